"""Train a ``kind: pretrain`` recipe with the project's Trainer; same run-directory layout as any run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from polymodal.data.dataset import build_data, check_shapes, pin_options
from polymodal.pretrain.base import build_encoders
from polymodal.pretrain.recipe import PretrainRecipe, pretrain_recipe_to_dict
from polymodal.registry import OBJECTIVES
from polymodal.train.checkpoint import atomic_write_text, load_weights
from polymodal.train.trainer import Callback, Trainer


def build_objective(
    recipe: PretrainRecipe,
    in_shapes: dict[str, tuple[int, ...]],
    contexts: dict[str, dict[str, Any]],
    transforms: dict[str, Any],
    classes: list[str],
) -> nn.Module:
    """The recipe's encoders wrapped in its objective (an ``nn.Module`` with the Trainer's four calls)."""
    encoders = build_encoders(recipe.inputs, in_shapes, contexts)
    return OBJECTIVES.build(
        recipe.objective.name,
        recipe.objective.params,
        encoders=encoders,
        in_shapes=in_shapes,
        contexts=contexts,
        transforms=transforms,
        classes=classes,
    )


def train_pretrain(recipe: PretrainRecipe, run: Path, resume: bool, callback: Callback | None) -> Any:
    """Pretrain the recipe's encoders; writes recipe.yaml, meta.json (``kind: pretrain``), transforms.json,
    weights.safetensors (best validation loss), metrics.jsonl and metrics.json (test-split objective metrics).

    Returns:
        A :class:`polymodal.api.RunResult` whose ``test`` holds the objective's test metrics.
    """
    from polymodal.api import RunResult, run_meta

    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    states_file = run / "transforms.json"
    states = json.loads(states_file.read_text(encoding="utf-8")) if resume and states_file.is_file() else None
    data = build_data(recipe.data_recipe(), transform_states=states)
    train_ds = data.splits["train"]
    contexts = {name: t.context() for name, t in data.transforms.items()}
    model = build_objective(recipe, train_ds.shapes, contexts, data.transforms, data.classes)
    if not resume:
        atomic_write_text(
            run / "recipe.yaml", yaml.safe_dump(pretrain_recipe_to_dict(pin_options(recipe, data)), sort_keys=False)
        )
    meta = {
        "kind": "pretrain",
        "objective": recipe.objective.name,
        "inputs": {s.name: {"modality": s.modality, "encoder": s.encoder.name} for s in recipe.inputs},
        **run_meta(data, model, recipe.seed),
        "encoder_parameters": {k: sum(p.numel() for p in e.parameters()) for k, e in model.encoders.items()},
    }
    atomic_write_text(run / "meta.json", json.dumps(meta, indent=2))
    atomic_write_text(states_file, json.dumps({name: t.state_dict() for name, t in data.transforms.items()}))
    trainer = Trainer(model, recipe.trainer, run, recipe.seed, callback)
    fit = trainer.fit(train_ds, data.splits["val"], resume=resume)
    test = {"objective": recipe.objective.name, **trainer.evaluate(data.splits["test"])}
    record = {
        "test": test,
        "best_val": fit.best_val,
        "best_epoch": fit.best_epoch,
        "epochs_run": fit.epochs_run,
        "train_seconds": round(fit.seconds, 3),
        "objective": dataclasses.asdict(recipe.objective.params),
    }
    atomic_write_text(run / "metrics.json", json.dumps(record, indent=2))
    return RunResult(
        run, test, fit.best_val, fit.best_epoch, fit.seconds, data.source, len(data.skipped), fit, trainer, data
    )


def evaluate_pretrain(run_dir: str | Path, split: str = "test") -> dict[str, Any]:
    """Re-score a finished pretraining run's best weights on a split of its data with its objective's metrics
    (e.g. after a metric changed; the run's files are not modified)."""
    from polymodal.api import as_recipe
    from polymodal.errors import CheckpointError, DataError

    run = Path(run_dir)
    for needed in ("recipe.yaml", "meta.json", "transforms.json", "weights.safetensors"):
        if not (run / needed).is_file():
            raise CheckpointError(f"{run} has no {needed}; give a finished pretraining run directory")
    if split not in ("train", "val", "test"):
        raise DataError(f"unknown split '{split}'; use train, val or test")
    recipe = as_recipe(run / "recipe.yaml")
    states = json.loads((run / "transforms.json").read_text(encoding="utf-8"))
    meta = json.loads((run / "meta.json").read_text(encoding="utf-8"))
    data = build_data(recipe.data_recipe(), transform_states=states)
    check_shapes(data.splits["train"].shapes, meta["in_shapes"], data.source, str(meta.get("data_source")))
    contexts = {name: t.context() for name, t in data.transforms.items()}
    model = build_objective(recipe, data.splits["train"].shapes, contexts, data.transforms, data.classes)
    load_weights(model, run / "weights.safetensors")
    trainer = Trainer(model, recipe.trainer, run, recipe.seed)
    return {"objective": recipe.objective.name, "split": split, **trainer.evaluate(data.splits[split].view())}
