"""Single-label classification head: optional hidden layer, linear to K classes, cross-entropy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from polymodal.registry import HEADS


@dataclass
class ClassificationConfig:
    """Recipe keys for ``head: {name: classification}``."""

    hidden: Annotated[int, Field(ge=0)] = 0
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0


@HEADS.register("classification", ClassificationConfig)
class ClassificationHead(nn.Module):
    """Map the fused vector (B, D) to class logits (B, K).

    Args:
        in_dim: Width D of the fused vector.
        num_classes: Number of classes K.
        hidden: Width of an optional hidden layer (0 = none).
        dropout: Dropout before each linear layer.
        label_smoothing: Cross-entropy label smoothing.
        project: False when the fusion already emits logits (late fusion): forward is then the identity.
    """

    def __init__(
        self, in_dim: int, num_classes: int, hidden: int, dropout: float, label_smoothing: float, project: bool = True
    ) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing
        if not project:
            self.net: nn.Module = nn.Identity()
        elif hidden:
            self.net = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(in_dim, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, num_classes),
            )
        else:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, num_classes))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)  # (B, K)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target, label_smoothing=self.label_smoothing)

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities (B, K)."""
        return logits.float().softmax(dim=-1)
