"""``kind: federated``: a supervised model trained by FedAvg over simulated non-IID clients (``polymodal
federated RECIPE`` trains any supervised recipe this way). The run directory is a supervised run's, so
``predict``, ``evaluate``, ``export`` and ``serve`` work on it as on any supervised run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from polymodal.data.dataset import build_data
from polymodal.errors import ConfigError
from polymodal.kinds.base import Callback, RunResult, finish
from polymodal.kinds.federated.partition import dirichlet_split, label_histogram
from polymodal.kinds.federated.recipe import FederatedRecipe, federated_recipe_to_dict, parse_federated_recipe
from polymodal.kinds.federated.step import FedAvgStep
from polymodal.kinds.supervised.files import data_meta, write_run_start
from polymodal.kinds.supervised.kind import SupervisedKind
from polymodal.model import build_model
from polymodal.runs import RunDir
from polymodal.training.distributed import Dist
from polymodal.training.trainer import Loop, Trainer


class FederatedKind(SupervisedKind):
    """FedAvg: rounds of local training on each chosen client's shard, averaged into the global model."""

    title = "federated"
    recipe = FederatedRecipe
    distributed = False
    on_device = False  # clients train in turn on the CPU

    def parse(self, raw: dict[str, Any], source: str) -> FederatedRecipe:
        return parse_federated_recipe(raw, source)

    def to_dict(self, recipe: FederatedRecipe) -> dict[str, Any]:
        return federated_recipe_to_dict(recipe)

    def train(
        self, recipe: FederatedRecipe, run: RunDir, resume: bool, callback: Callback | None, dist: Dist
    ) -> RunResult:
        """Simulate FedAvg for ``recipe.federated`` rounds; the best round's global model is tested."""
        fed, cfg, seed = recipe.federated, recipe.trainer, recipe.seed
        torch.manual_seed(seed)
        data = build_data(recipe)
        if callback:
            callback("data", source=data.source, sizes={k: len(v) for k, v in data.splits.items()})
        train, val, test = data.splits["train"], data.splits["val"], data.splits["test"]
        labels = train.targets.numpy()
        if data.target.get("kind", "class") != "class" or labels.ndim != 1:
            raise ConfigError("federated: the Dirichlet label split needs a single-label classification head")
        contexts = {name: t.context() for name, t in data.transforms.items()}
        model = build_model(recipe, train.shapes, data.target, contexts)
        shards = dirichlet_split(labels, fed.clients, fed.alpha, seed)
        sizes = [len(s) for s in shards]
        meta = {
            **data_meta(data, model, seed),
            "federated": {
                "client_sizes": sizes,
                "client_labels": label_histogram(labels, shards, len(data.classes)).tolist(),
            },
        }
        write_run_start(self, run, recipe, data, meta, resume)
        step = FedAvgStep(model, cfg, fed, train, val, shards, seed)
        loop = Loop(fed.rounds, 0, cfg.threads, cfg.tensorboard, cfg.time_limit)  # an epoch is a round
        fit = Trainer(step, loop, run, seed, callback).fit(resume)
        extra = {"federated": {**vars(fed), "client_sizes": sizes}}
        return finish(self, run, fit, step.evaluator.evaluate(test), data.source, dist, extra, 0, model, data)

    def progress(self, row: dict[str, Any]) -> str:
        loss = "-" if row.get("train_loss") is None else f"{row['train_loss']:.3f}"
        return (
            f"round {row['round']}: clients {row['clients']} ({row['examples']} examples)  train loss {loss}  "
            f"val acc {row['val_accuracy']:.4f}"
        )

    def summary(self, result: RunResult) -> list[str]:
        sizes = result.record["federated"]["client_sizes"]
        m = result.metrics
        return [
            f"test accuracy {m['accuracy']:.4f}  macro F1 {m['macro_f1']:.4f}  (best round {result.best_epoch}, "
            f"{result.seconds:.1f} s, client sizes {sizes}, data: {result.data_source})"
        ]

    def example(self, folder: Path) -> dict[str, Any]:
        raw = super().example(folder)
        return {**raw, "name": "example-federated", "kind": "federated", "federated": {"clients": 3, "rounds": 2}}
