"""Everything the report sections read about one finished run, loaded once.

Files first (recipe, meta, per-epoch history, final metrics); then, for a multimodal run, the model with its
best weights, the chosen split of its own data and the model's outputs on it. Data that cannot be loaded
(e.g. a dataset whose local copy is gone) is not fatal: ``data_error`` says why, and the sections that need
predictions show that note while the others still render from the saved files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from polymodal.errors import CheckpointError, PolymodalError


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is unreadable ({exc}); re-run `polymodal evaluate` on a finished run") from None


@dataclass
class RunView:
    """A finished run and (for multimodal runs) its model's outputs on one split.

    Attributes:
        run_dir: The run folder.
        kind: ``"lm"`` for a language model, ``"gan"`` for a GAN, else the head's target kind (class, multilabel,
            multitask, text).
        recipe: The saved recipe as a mapping.
        meta: ``meta.json``.
        metrics: ``metrics.json`` (final metrics written by training), or {} if absent.
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
        """The metrics to show: recomputed on the split when the data loaded, else the saved test metrics."""
        if self.split_metrics:
            return self.split_metrics
        return self.metrics.get("test") or self.metrics.get("val") or {}


def load_run(run_dir: str | Path, split: str = "test", table: str | Path | None = None) -> RunView:
    """Read a finished run and evaluate its model on ``split`` (train, val or test) of its own data, or on
    every row of another manifest ``table`` (see :func:`polymodal.data.dataset.build_table_data`)."""
    run = Path(run_dir)
    for needed in ("recipe.yaml", "meta.json"):
        if not (run / needed).is_file():
            raise CheckpointError(f"{run} has no {needed}; give a finished run directory")
    if split not in ("train", "val", "test"):
        raise PolymodalError(f"unknown split '{split}'; use train, val or test")
    recipe = yaml.safe_load((run / "recipe.yaml").read_text(encoding="utf-8")) or {}
    meta = read_json(run / "meta.json")
    metrics = read_json(run / "metrics.json") if (run / "metrics.json").is_file() else {}
    history = []
    if (run / "metrics.jsonl").is_file():
        lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        history = [json.loads(ln) for ln in lines if ln.strip()]
    if table is not None and meta.get("kind"):
        raise PolymodalError(f"{run} is a kind: {meta['kind']} run; --data is for multimodal models (drop --data)")
    if meta.get("kind") in ("lm", "gan"):  # read from the run's files; nothing to evaluate on a split
        return RunView(run, meta["kind"], recipe, meta, metrics, history, "val" if meta["kind"] == "lm" else "test")
    kind = (meta.get("target") or {}).get("kind", "class")
    if not (run / "weights.safetensors").is_file():
        raise CheckpointError(f"{run} has no weights.safetensors; the run has not finished an epoch yet")
    from polymodal import api
    from polymodal.train.trainer import Trainer

    view = RunView(run, kind, recipe, meta, metrics, history, split)
    view.predictor = api.load(run)
    p = view.predictor
    if table is not None:  # the user asked for this table: a problem with it is an error, not a note
        view.table = Path(table)
        view.split = view.table.name
        view.dataset, _ = p.table_data(table)
    else:
        try:
            data = p.data()
        except PolymodalError as exc:
            view.data_error = str(exc)
            return view
        view.dataset = data.splits[split].view()  # no training-time augmentation, even on the train split
    trainer = Trainer(p.model, p.recipe.trainer, run, p.recipe.seed)
    view.outputs, view.targets, view.split_loss = trainer.predict(view.dataset)
    view.split_metrics = {"loss": view.split_loss, **p.model.metrics(view.outputs, view.targets)}
    return view
