"""A run kind added with no edit anywhere else: a tiny "majority" kind (it learns the class prior of real MNIST
labels) is registered by this file, as a folder's ``__init__`` would register it, and then the spine trains,
resumes, evaluates, reports and refuses commands for it through the ordinary CLI."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
import torch
import yaml
from conftest import one_error_line, run_cli
from torch import nn

from polymodal.config import DataConfig, TrainerConfig, check_data, data_to_dict
from polymodal.data.table import assign_splits
from polymodal.kinds import base
from polymodal.kinds.base import Callback, RunKind, RunResult, finish
from polymodal.registry import DATASETS, KINDS
from polymodal.runs import RunDir
from polymodal.schema import parse_dataclass
from polymodal.training.distributed import Dist, epoch_order
from polymodal.training.steps import EpochEnd, Monitor, Stateless, StepResult
from polymodal.training.trainer import Trainer


@dataclass
class MajorityRecipe:
    name: str
    kind: Literal["majority"] = "majority"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(epochs=3, batch_size=256, lr=0.5))


class Prior(nn.Module):
    def __init__(self, classes: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(classes))


class PriorStep(Stateless):
    """Learns the class log-prior from label batches; predicts the most frequent class."""

    monitor = Monitor("val_accuracy", True)
    mid_epoch_checkpoints = True

    def __init__(self, labels: dict[str, np.ndarray], classes: int, cfg: TrainerConfig, seed: int) -> None:
        self.labels, self.cfg, self.seed = {k: torch.as_tensor(v) for k, v in labels.items()}, cfg, seed
        self.model = Prior(classes)
        self.optimizer: torch.optim.Optimizer | None = torch.optim.SGD(self.model.parameters(), lr=cfg.lr)

    def units(self, epoch: int) -> Sequence[list[int]]:
        order = epoch_order(len(self.labels["train"]), self.seed, epoch)
        return [order[i : i + self.cfg.batch_size] for i in range(0, len(order), self.cfg.batch_size)]

    def feed(self, units: Sequence[list[int]]) -> Iterable[list[int]]:
        return units

    def step(self, unit: list[int], step: int) -> StepResult:
        y = self.labels["train"][unit]
        loss = nn.functional.cross_entropy(self.model.logits.expand(len(y), -1), y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return StepResult(loss.item(), len(y), self.cfg.lr)

    def accuracy(self, split: str) -> float:
        return float((self.labels[split] == self.model.logits.argmax()).float().mean())

    def end_epoch(self, epoch: int, steps: int) -> EpochEnd:
        return EpochEnd({"val_accuracy": self.accuracy("val")}, {"accuracy": self.accuracy("val")})


class MajorityKind(RunKind):
    title = "majority-class"
    recipe = MajorityRecipe
    verbs = frozenset({"evaluate", "report"})

    def parse(self, raw: dict[str, Any], source: str) -> MajorityRecipe:
        recipe = parse_dataclass(MajorityRecipe, raw, "")
        check_data(recipe.data)
        return recipe

    def to_dict(self, recipe: MajorityRecipe) -> dict[str, Any]:
        return {**dataclasses.asdict(recipe), "data": data_to_dict(recipe.data)}

    def train(
        self, recipe: MajorityRecipe, run: RunDir, resume: bool, callback: Callback | None, dist: Dist
    ) -> RunResult:
        table = DATASETS.get(str(recipe.data.dataset)).factory(**dataclasses.asdict(recipe.data.options)).load()
        split = assign_splits(table, recipe.data.val_fraction, recipe.data.test_fraction, recipe.seed)
        y = table.frame[table.label].to_numpy()
        labels = {name: y[split == name] for name in ("train", "val", "test")}
        run.write_recipe(self.to_dict(recipe))
        run.write_meta(self.name, {"classes": int(y.max()) + 1, "data_source": table.source}, table.content_hash())
        step = PriorStep(labels, int(y.max()) + 1, recipe.trainer, recipe.seed)
        fit = Trainer(step, recipe.trainer, run, recipe.seed, callback, dist).fit(resume)
        metrics = {"accuracy": step.accuracy("test"), "n": len(labels["test"])}
        return finish(self, run, fit, metrics, table.source or "mnist", dist, model=step.model)

    def example(self, folder: Path) -> dict[str, Any]:
        return {"name": "example-majority", "kind": "majority", "data": {"dataset": "mnist"}}


@pytest.fixture
def majority_kind():
    KINDS.register("majority", MajorityRecipe)(MajorityKind)
    yield
    KINDS._entries.pop("majority", None)
    base._instances.pop("majority", None)


def test_a_kind_registered_from_one_place_works_through_the_whole_spine(majority_kind, tmp_path, capsys):
    path = tmp_path / "majority.yaml"
    path.write_text(yaml.safe_dump(MajorityKind().example(tmp_path)))
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", path, "--run-dir", run)
    assert code == 0, err
    assert "test: accuracy 0.1" in out and "(best epoch" in out  # MNIST's classes are nearly balanced
    assert RunDir(run).kind == "majority" and [r["epoch"] for r in RunDir(run).history()] == [1, 2, 3]
    code, out, err = run_cli(capsys, "evaluate", run)
    assert code == 0 and out.startswith("test: accuracy") and (run / "report.html").is_file(), err
    code, out, err = run_cli(capsys, "train", "--resume", "--run-dir", run)
    assert code == 0 and "test: accuracy" in out, err  # resuming a finished run trains nothing more
    assert [r["epoch"] for r in RunDir(run).history()] == [1, 2, 3]
    line = one_error_line(*run_cli(capsys, "predict", run, "--image", "x.png")[::2], status=4)
    assert (
        "is a kind: majority run; `polymodal predict` is for" in line and "supports: train --resume, evaluate" in line
    )
    line = one_error_line(*run_cli(capsys, "sample", tmp_path / "elsewhere", "--label", "1")[::2], status=4)
    assert "`polymodal sample` is for GAN runs (kind: gan)" in line
