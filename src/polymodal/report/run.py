"""Everything the report sections read about one finished run, loaded once.

Files first (recipe, meta, per-epoch history, final metrics); then, for a multimodal run, the model with its
best weights, the chosen split of its own data and the model's outputs on it. Data that cannot be loaded
(e.g. a dataset whose local copy is gone) is not fatal: ``data_error`` says why, and the sections that need
predictions show that note while the others still render from the saved files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from polymodal.errors import PolymodalError
from polymodal.kinds.base import for_run
from polymodal.runs import RunDir


@dataclass
class RunView:
    """A finished run and (for multimodal runs) its model's outputs on one split.

    Attributes:
        run_dir: The run folder.
        kind: The run kind (``lm``, ``gan``, ``pretrain``, ...) for runs without a model to score on a split;
            for supervised and federated runs the head's target kind (class, multilabel, multitask, text).
        recipe: The saved recipe as a mapping.
        meta: ``meta.json``.
        metrics: ``metrics.json`` (the final record written by training), or {} if absent; ``final`` holds its
            held-out metrics and ``final_split`` what they were measured on.
        history: ``metrics.jsonl`` rows, one per epoch.
        split: The evaluated split name (the manifest's file name when evaluated on ``table``).
        predictor, dataset, outputs, targets, split_metrics: Model, split dataset, reduced outputs (N, ...),
            targets (N, ...) and the head's metrics on them; None when the data could not be loaded.
        data_error: Why the data could not be loaded, else None.
    """

    run_dir: Path
    kind: str
    recipe: dict[str, Any]
    meta: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    split: str
    predictor: Any = None
    dataset: Any = None
    outputs: np.ndarray | None = None
    targets: np.ndarray | None = None
    split_metrics: dict[str, Any] = field(default_factory=dict)
    split_loss: float | None = None
    data_error: str | None = None
    table: Path | None = None  # evaluated on this manifest (all its rows) instead of a split of the run's data
    run_kind: str = ""  # the run's registered kind (``kind`` above is the head's target kind for model runs)

    @property
    def model(self) -> Any:
        return self.predictor.model if self.predictor is not None else None

    @property
    def name(self) -> str:
        return str(self.recipe.get("name") or self.run_dir.name)

    @property
    def where(self) -> str:
        """What the outputs are on, for a sentence: "the test split" or "all 120 rows of new.csv"."""
        if self.table is not None:
            return f"all {len(self.dataset) if self.dataset is not None else '?'} rows of {self.table.name}"
        return f"the {self.split} split"

    @property
    def scores(self) -> dict[str, Any]:
        """The metrics to show: recomputed on the split when the data loaded, else the run's final metrics."""
        if self.split_metrics:
            return self.split_metrics
        return self.metrics.get("final") or {}


def load_run(run_dir: str | Path, split: str = "test", table: str | Path | None = None) -> RunView:
    """Read a finished run and, for kinds with a model to score (supervised, federated), evaluate it on ``split``
    (train, val or test) of its own data, or on every row of another manifest ``table`` (see
    :func:`polymodal.data.dataset.build_table_data`)."""
    run = RunDir(run_dir)
    run.require("recipe.yaml", "meta.json")
    if split not in ("train", "val", "test"):
        raise PolymodalError(f"unknown split '{split}'; use train, val or test")
    kind = for_run(run)
    recipe = yaml.safe_load(run.recipe_file.read_text(encoding="utf-8")) or {}
    meta = run.meta()
    split_name, scores = run.final_metrics()
    metrics = {**run.record(), "final": scores, "final_split": split_name}
    history = run.history()
    if table is not None and "predict" not in kind.verbs:
        raise PolymodalError(f"{run.path} is a kind: {kind.name} run; --data is for multimodal models (drop --data)")
    if "predict" not in kind.verbs:  # read from the run's files; nothing to score on a split
        return RunView(run.path, kind.name, recipe, meta, metrics, history, split_name)
    run.require("weights.safetensors")
    target_kind = (meta.get("target") or {}).get("kind", "class")
    view = RunView(run.path, target_kind, recipe, meta, metrics, history, split, run_kind=kind.name)
    try:
        # The report's explanations feed the model CPU tensors: it is scored on the CPU (a report is small).
        out = kind.outputs(run, split, Path(table) if table is not None else None, "cpu")
    except PolymodalError as exc:
        if table is not None:  # the user asked for this table: a problem with it is an error, not a note
            raise
        view.predictor = kind.load(run, "cpu")
        view.data_error = str(exc)
        return view
    assert out is not None
    view.predictor, view.dataset = out.predictor, out.dataset
    view.outputs, view.targets, view.split_loss, view.split_metrics = out.outputs, out.targets, out.loss, out.metrics
    if table is not None:
        view.table = Path(table)
        view.split = view.table.name
    return view
