"""Single-label classification head: optional hidden layer, linear to K classes, cross-entropy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from polymodal.data.targets import num_outputs
from polymodal.metrics.metrics import classification_metrics
from polymodal.registry import HEADS
from polymodal.schema import Hidden


@dataclass
class ClassificationConfig:
    """Recipe keys for ``head: {name: classification}``."""

    hidden: Hidden = 0
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0


def projection(in_dim: int, out_dim: int, hidden: int, dropout: float, project: bool) -> nn.Module:
    """Dropout-linear (or dropout-linear-ReLU-dropout-linear with ``hidden``); identity if not ``project``."""
    if not project:
        return nn.Identity()
    if hidden:
        return nn.Sequential(
            nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)
        )
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, out_dim))


@HEADS.register("classification", ClassificationConfig)
class ClassificationHead(nn.Module):
    """Map the fused vector (B, D) to class logits (B, K); targets are class indices (B,).

    Args:
        in_dim: Width D of the fused vector.
        target: Target info (``{"kind": "class", "classes": [...]}``).
        hidden: Width of an optional hidden layer (0 = none).
        dropout: Dropout before each linear layer.
        label_smoothing: Cross-entropy label smoothing.
        project: False when the fusion already emits logits (late fusion): forward is then the identity.
    """

    TARGET = "class"
    EXAMPLE_TARGET: dict[str, Any] = {"kind": "class", "classes": ["a", "b", "c", "d", "e"]}

    def __init__(
        self,
        in_dim: int,
        target: dict[str, Any],
        hidden: int,
        dropout: float,
        label_smoothing: float,
        project: bool = True,
    ) -> None:
        super().__init__()
        self.classes: list[str] = list(target["classes"])
        self.label_smoothing = label_smoothing
        self.net = projection(in_dim, num_outputs(target), hidden, dropout, project)

    @staticmethod
    def example_target(batch: int) -> torch.Tensor:
        return torch.arange(batch) % 5

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)  # (B, K)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target, label_smoothing=self.label_smoothing)

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities (B, K)."""
        return logits.float().softmax(dim=-1)

    def metrics(self, logits: np.ndarray, target: np.ndarray) -> dict[str, Any]:
        """Accuracy, macro P/R/F1, per-class scores, confusion matrix."""
        return classification_metrics(target, logits.argmax(1), len(self.classes), self.classes)

    def describe(self, logits: torch.Tensor) -> dict[str, Any]:
        """One example's logits (K,) -> ``{"label", "probabilities"}``."""
        probs = self.predict(logits)
        return {
            "label": self.classes[int(probs.argmax())],
            "probabilities": {c: float(p) for c, p in zip(self.classes, probs, strict=True)},
        }
