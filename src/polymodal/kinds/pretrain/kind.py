"""``kind: pretrain``: encoders trained by a self-supervised objective (MLM, MAE, CLIP), kept for ``init_from``.

The same run-directory layout as any run; the objective's metrics on the test split are the run's metrics.
The label column only stratifies the split and scores zero-shot classification; no objective trains on it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polymodal.data.dataset import DataBundle, build_data, check_shapes
from polymodal.errors import DataError
from polymodal.kinds.base import Callback, RunKind, RunResult, finish, read_recipe
from polymodal.kinds.pretrain.recipe import PretrainRecipe, parse_pretrain_recipe, pretrain_recipe_to_dict
from polymodal.kinds.supervised.files import data_meta, saved_transforms, write_run_start
from polymodal.pretrain.base import build_encoders
from polymodal.registry import OBJECTIVES
from polymodal.runs import RunDir
from polymodal.storage import load_weights
from polymodal.training.distributed import Dist, resolve_device
from polymodal.training.evaluator import Evaluator
from polymodal.training.steps import supervised_step
from polymodal.training.trainer import Trainer

META: dict[str, type | tuple[type, ...]] = {"in_shapes": dict, "inputs": dict, "objective": str}


def build_objective(recipe: PretrainRecipe, data: DataBundle) -> nn.Module:
    """The recipe's encoders wrapped in its objective (a :class:`~polymodal.contracts.Trainable` module)."""
    shapes = data.splits["train"].shapes
    contexts = {name: t.context() for name, t in data.transforms.items()}
    return OBJECTIVES.build(
        recipe.objective.name,
        recipe.objective.params,
        encoders=build_encoders(recipe.inputs, shapes, contexts),
        in_shapes=shapes,
        contexts=contexts,
        transforms=data.transforms,
        classes=data.classes,
    )


class PretrainKind(RunKind):
    """Self-supervised pretraining of encoders."""

    title = "pretraining"
    recipe = PretrainRecipe
    verbs = frozenset({"evaluate", "report"})
    on_device = True

    def parse(self, raw: dict[str, Any], source: str) -> PretrainRecipe:
        return parse_pretrain_recipe(raw, source)

    def to_dict(self, recipe: PretrainRecipe) -> dict[str, Any]:
        return pretrain_recipe_to_dict(recipe)

    def train(
        self, recipe: PretrainRecipe, run: RunDir, resume: bool, callback: Callback | None, dist: Dist
    ) -> RunResult:
        """Pretrain the recipe's encoders; the weights kept are those of the best validation loss."""
        torch.manual_seed(recipe.seed)
        data = build_data(recipe.data_recipe(), transform_states=saved_transforms(run, resume))
        model = build_objective(recipe, data)
        if callback:
            callback("data", source=data.source, sizes={k: len(v) for k, v in data.splits.items()})
        meta = {
            "objective": recipe.objective.name,
            "inputs": {s.name: {"modality": s.modality, "encoder": s.encoder.name} for s in recipe.inputs},
            **data_meta(data, model, recipe.seed),
            "encoder_parameters": {k: sum(p.numel() for p in e.parameters()) for k, e in model.encoders.items()},
        }
        write_run_start(self, run, recipe, data, meta, resume)
        step = supervised_step(model, recipe.trainer, data.splits["train"], data.splits["val"], recipe.seed, dist)
        fit = Trainer(step, recipe.trainer, run, recipe.seed, callback, dist).fit(resume)
        test = {"objective": recipe.objective.name, **step.evaluator.evaluate(data.splits["test"])}
        extra = {"objective": dataclasses.asdict(recipe.objective.params)}
        return finish(self, run, fit, test, data.source, dist, extra, len(data.skipped), model, data)

    def evaluate(
        self, run: RunDir, split: str = "test", table: Path | None = None, device: str | None = None
    ) -> dict[str, Any]:
        """Re-score the run's kept weights on a split of its data with its objective's metrics (e.g. after a
        metric changed); the run's files are not modified."""
        if table is not None:
            return super().evaluate(run, split, table)  # the one-line refusal of --data
        if split not in ("train", "val", "test"):
            raise DataError(f"unknown split '{split}'; use train, val or test")
        run.require("recipe.yaml", "meta.json", "transforms.json", "weights.safetensors")
        meta = run.fields(META)
        recipe: PretrainRecipe = read_recipe(run.recipe_file, kind=self.name)
        data = build_data(recipe.data_recipe(), transform_states=run.read_json("transforms.json"))
        check_shapes(data.splits["train"].shapes, meta["in_shapes"], data.source, str(meta.get("data_source")))
        model = build_objective(recipe, data)
        load_weights(model, run.weights)
        where = torch.device(resolve_device(device or recipe.trainer.device))
        evaluator = Evaluator(model.to(where), max(recipe.trainer.batch_size, 128), device=where)
        metrics = evaluator.evaluate(data.splits[split].view())
        return {"objective": recipe.objective.name, "split": split, **metrics}

    def describe(self, metrics: dict[str, Any], split: str) -> list[str]:
        shown = {k: v for k, v in metrics.items() if isinstance(v, float)}
        return [f"{split} {metrics.get('objective', '')}: " + "  ".join(f"{k} {v:.4f}" for k, v in shown.items())]

    def example(self, folder: Path) -> dict[str, Any]:
        return {
            "name": "example-pretrain",
            "kind": "pretrain",
            "objective": {"name": "mae", "mask_ratio": 0.5},
            "data": {"dataset": "mnist", "label_fraction": 0.05, "disk_cache": False},
            "inputs": [
                {
                    "name": "image",
                    "modality": "image",
                    "encoder": {"name": "image_vit", "patch": 7, "width": 16, "heads": 2, "layers": 1},
                }
            ],
            "trainer": {"epochs": 2, "batch_size": 32, "checkpoint_every": 0, "threads": 1},
        }
