"""Stacking: per-modality classifiers, and a meta-classifier trained on their decisions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.fusion.base import linear_per_modality, pooled, presence
from polymodal.registry import FUSIONS
from polymodal.schema import Hidden


@dataclass
class StackingConfig:
    """Recipe keys for ``fusion: {name: stacking}``."""

    hidden: Hidden = 0
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    unimodal_loss: Annotated[float, Field(ge=0)] = 1.0


@FUSIONS.register("stacking", StackingConfig)
class StackingFusion(nn.Module):
    """Base classifiers (B, D_m) -> (B, K) per modality; a meta-classifier maps their log-probabilities and
    presence flags (B, M·K + M) to (B, K).

    As in stacked generalisation the base classifiers learn only from their own loss (on the logits
    ``forward_with_aux`` returns): the meta-classifier sees their outputs detached, so it learns how far to trust
    each modality (and what to do when one is missing) without bending the base classifiers toward itself.

    Args:
        in_dims: ``{modality: D_m}`` of each encoder output.
        num_outputs: Number of logits K.
        hidden: Width of a hidden layer in the meta-classifier (0 = linear).
        dropout: Dropout on each embedding before its base classifier.
        unimodal_loss: Weight of the base classifiers' losses.
    """

    emits_logits = True

    def __init__(
        self, in_dims: dict[str, int], num_outputs: int, hidden: int, dropout: float, unimodal_loss: float
    ) -> None:
        super().__init__()
        self.keys, self.unimodal_loss = sorted(in_dims), unimodal_loss
        self.drop = nn.Dropout(dropout)
        self.classifiers = linear_per_modality(in_dims, num_outputs)
        width = len(self.keys) * (num_outputs + 1)
        self.meta: nn.Module = (
            nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, num_outputs))
            if hidden
            else nn.Linear(width, num_outputs)
        )
        self.out_dim = num_outputs

    def forward(
        self, embeddings: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        return self.forward_with_aux(embeddings, present)[0]

    def forward_with_aux(
        self, embeddings: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The fused (B, K) scores and each modality's own (B, K) logits (trained by their own loss)."""
        per = {k: self.classifiers[k](self.drop(pooled(embeddings[k]))) for k in self.keys}  # each (B, K)
        w = presence(self.keys, present, per[self.keys[0]])  # (B, M)
        decisions = [per[k].detach().log_softmax(-1) * w[:, i : i + 1] for i, k in enumerate(self.keys)]
        return self.meta(torch.cat([*decisions, w], dim=-1)), per  # (B, K)
