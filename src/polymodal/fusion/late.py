"""Late (decision-level) fusion: one classifier per modality, logits averaged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.registry import FUSIONS


@dataclass
class LateConfig:
    """Recipe keys for ``fusion: {name: late}``."""

    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


@FUSIONS.register("late", LateConfig)
class LateFusion(nn.Module):
    """Per-modality linear classifiers whose logits are averaged: (B, D_m) each -> (B, num_outputs).

    Each modality decides on its own and the decisions are pooled, so a modality cannot lean on
    feature interactions with another. The head then only supplies the loss (``emits_logits``).

    Args:
        in_dims: ``{modality: D}`` of each encoder output.
        num_outputs: Number of logits (classes).
        dropout: Dropout on each embedding before its classifier.
    """

    emits_logits = True

    def __init__(self, in_dims: dict[str, int], num_outputs: int, dropout: float) -> None:
        super().__init__()
        self.keys = sorted(in_dims)
        self.drop = nn.Dropout(dropout)
        self.classifiers = nn.ModuleDict({k: nn.Linear(in_dims[k], num_outputs) for k in self.keys})
        self.out_dim = num_outputs

    def forward(self, embeddings: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = [self.classifiers[k](self.drop(embeddings[k])) for k in self.keys]  # each (B, K)
        return torch.stack(logits).mean(dim=0)  # (B, K)
