"""What runs that train encoders on a table's inputs (supervised, federated, pretraining) record the same way."""

from __future__ import annotations

import json
from typing import Any

import torch

from polymodal.data.dataset import DataBundle, pin_options
from polymodal.errors import DataError
from polymodal.runs import RunDir
from polymodal.training.distributed import Dist


def data_meta(data: DataBundle, model: torch.nn.Module, seed: int) -> dict[str, Any]:
    """meta.json's record of a run's data, model and seed (callers add their own keys; RunDir adds provenance)."""
    train = data.splits["train"]
    return {
        "classes": data.classes,
        "target": data.target,
        "in_shapes": train.shapes,
        "in_dtypes": {k: str(d).removeprefix("torch.") for k, d in train.dtypes.items()},
        "contexts": {name: t.context() for name, t in data.transforms.items()},
        "data_source": data.source,
        "label_column": data.label,
        "sizes": {k: len(v) for k, v in data.splits.items()},
        "skipped_rows": len(data.skipped),
        "seed": seed,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def transform_states(data: DataBundle) -> dict[str, Any]:
    return {name: t.state_dict() for name, t in data.transforms.items()}


def write_data_files(run: RunDir, data: DataBundle) -> None:
    """transforms.json (what each input's transform learnt from the training rows), and skipped.json."""
    run.write_json("transforms.json", transform_states(data))
    if data.skipped:
        run.write_json("skipped.json", data.skipped)


def write_run_start(kind: Any, run: RunDir, recipe: Any, data: DataBundle, meta: dict[str, Any], resume: bool) -> None:
    """What a run folder holds before the first step: the recipe with its data options pinned (new runs only),
    meta.json, transforms.json and skipped.json."""
    if not resume:
        run.write_recipe(kind.to_dict(pin_options(recipe, data)))
    run.write_meta(kind.name, meta, data.data_hash)
    write_data_files(run, data)


def saved_transforms(run: RunDir, resume: bool) -> dict[str, Any] | None:
    """A resumed run's fitted transform states (so the resumed run preprocesses as before), else None."""
    return run.read_json("transforms.json") if resume and (run / "transforms.json").is_file() else None


def check_same_everywhere(dist: Dist, states: dict[str, Any]) -> None:
    """Every process fits the transforms on the same training split; stop if one learnt something else
    (e.g. files that changed between reads), since rank 0's transforms.json would not describe the others."""
    mine = json.dumps(states, sort_keys=True)
    if dist.agree(mine) != mine:
        raise DataError(f"process {dist.rank} fitted different input transforms than rank 0; is the data changing?")
