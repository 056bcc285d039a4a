"""Multi-task head: one output block per task (classification or regression), losses weighted and summed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from polymodal.data.targets import num_outputs, task_size
from polymodal.errors import ConfigError
from polymodal.heads.classification import projection
from polymodal.metrics.metrics import classification_metrics
from polymodal.registry import HEADS
from polymodal.schema import Hidden, parse_dataclass


@dataclass
class TaskSpec:
    """One task: its label column, kind and loss weight."""

    column: str
    kind: Literal["classification", "regression"] = "classification"
    weight: Annotated[float, Field(ge=0)] = 1.0


@dataclass
class MultiTaskConfig:
    """Recipe keys for ``head: {name: multitask, tasks: [{column, kind, weight}, ...]}``."""

    tasks: list[Any] = field(default_factory=list)
    hidden: Hidden = 0
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1

    def __post_init__(self) -> None:
        self.tasks = [t if isinstance(t, TaskSpec) else parse_dataclass(TaskSpec, t, "head.tasks") for t in self.tasks]
        if not self.tasks:
            raise ConfigError("head.tasks: list at least one task, e.g. [{column: digit}, {column: speaker}]")
        columns = [t.column for t in self.tasks]
        if len(set(columns)) != len(columns):
            raise ConfigError(f"head.tasks: each column once, got {columns}")


@HEADS.register("multitask", MultiTaskConfig)
class MultiTaskHead(nn.Module):
    """(B, D) -> (B, Σ K_t): K_t logits per classification task, one value per regression task.

    Loss: ``Σ_t weight_t · loss_t`` with cross-entropy for classification and mean squared error on the
    standardised value for regression. Targets: (B, n_tasks) floats (class indices or standardised values).

    Args:
        in_dim: Width D of the fused vector.
        target: Target info with ``tasks`` (column, kind, classes or mean/std) from the data.
        tasks: The recipe's task list (column, kind, weight).
        hidden: Width of an optional shared hidden layer (0 = none).
        dropout: Dropout before each linear layer.
        project: False when the fusion already emits the (B, Σ K_t) outputs.
    """

    TARGET = "multitask"
    EXAMPLE_TARGET: dict[str, Any] = {
        "kind": "multitask",
        "tasks": [
            {"column": "digit", "kind": "classification", "classes": ["0", "1", "2"]},
            {"column": "age", "kind": "regression", "mean": 30.0, "std": 10.0},
        ],
    }
    EXAMPLE_CONFIG: dict[str, Any] = {"tasks": [{"column": "digit"}, {"column": "age", "kind": "regression"}]}

    def __init__(
        self,
        in_dim: int,
        target: dict[str, Any],
        tasks: list[dict[str, Any]],
        hidden: int,
        dropout: float,
        project: bool = True,
    ) -> None:
        super().__init__()
        self.tasks = target["tasks"]
        weights = {t["column"]: t["weight"] for t in tasks}  # the registry passes config fields as dicts
        self.weights = [float(weights.get(t["column"], 1.0)) for t in self.tasks]
        sizes = [task_size(t) for t in self.tasks]
        self.bounds = np.cumsum([0, *sizes]).tolist()
        self.net = projection(in_dim, num_outputs(target), hidden, dropout, project)

    @staticmethod
    def example_target(batch: int) -> torch.Tensor:
        return torch.stack([torch.arange(batch).float() % 3, torch.randn(batch)], dim=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)  # (B, Σ K_t)

    def split(self, out: torch.Tensor) -> list[torch.Tensor]:
        return [out[:, a:b] for a, b in zip(self.bounds[:-1], self.bounds[1:], strict=True)]

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros((), dtype=torch.float32)
        for i, (task, w, out) in enumerate(zip(self.tasks, self.weights, self.split(logits.float()), strict=True)):
            if task["kind"] == "classification":
                total = total + w * F.cross_entropy(out, target[:, i].long())
            else:
                total = total + w * F.mse_loss(out[:, 0], target[:, i].float())
        return total

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-task probabilities (classification) and values in original units (regression), (B, Σ K_t)."""
        parts = []
        for task, out in zip(self.tasks, self.split(logits.float()), strict=True):
            parts.append(out.softmax(-1) if task["kind"] == "classification" else out * task["std"] + task["mean"])
        return torch.cat(parts, dim=1)

    def metrics(self, logits: np.ndarray, target: np.ndarray) -> dict[str, Any]:
        """Per task: classification metrics, or MAE / RMSE / R² in original units; ``accuracy`` and
        ``macro_f1`` are the means over the classification tasks (for monitoring and the summary)."""
        per: dict[str, Any] = {}
        outs = self.split(torch.from_numpy(logits))
        for i, (task, out) in enumerate(zip(self.tasks, outs, strict=True)):
            out = out.numpy()
            if task["kind"] == "classification":
                m = classification_metrics(target[:, i].astype(np.int64), out.argmax(1), out.shape[1], task["classes"])
            else:
                pred = out[:, 0] * task["std"] + task["mean"]
                true = target[:, i] * task["std"] + task["mean"]
                err = pred - true
                var = float(((true - true.mean()) ** 2).sum())
                m = {
                    "mae": float(np.abs(err).mean()),
                    "rmse": float(np.sqrt((err**2).mean())),
                    "r2": 1.0 - float((err**2).sum()) / var if var > 0 else 0.0,
                    "n": int(len(err)),
                }
            per[task["column"]] = m
        cls = [per[t["column"]] for t in self.tasks if t["kind"] == "classification"]
        summary = {
            "accuracy": float(np.mean([m["accuracy"] for m in cls])) if cls else float("nan"),
            "macro_f1": float(np.mean([m["macro_f1"] for m in cls])) if cls else float("nan"),
        }
        return {**summary, "tasks": per, "n": int(len(target))}

    def describe(self, logits: torch.Tensor) -> dict[str, Any]:
        """One example's outputs (Σ K_t,) -> ``{task: {"label", "probabilities"} or {"value"}}``."""
        out = {}
        for task, part in zip(self.tasks, self.split(logits.float().unsqueeze(0)), strict=True):
            if task["kind"] == "classification":
                probs = part[0].softmax(-1)
                out[task["column"]] = {
                    "label": task["classes"][int(probs.argmax())],
                    "probabilities": {c: float(p) for c, p in zip(task["classes"], probs, strict=True)},
                }
            else:
                out[task["column"]] = {"value": float(part[0, 0]) * task["std"] + task["mean"]}
        return out
