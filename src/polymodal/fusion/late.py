"""Late (decision-level) fusion: one classifier per modality, their decisions combined."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from polymodal.fusion.base import linear_per_modality, masked_mean, masked_softmax, pooled, presence
from polymodal.registry import FUSIONS


@dataclass
class LateConfig:
    """Recipe keys for ``fusion: {name: late}``."""

    combine: Literal["mean", "vote", "learned"] = "mean"
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    # Weight of each modality's own classification loss, added to the loss of the combined decision.
    unimodal_loss: Annotated[float, Field(ge=0)] = 1.0


@FUSIONS.register("late", LateConfig)
class LateFusion(nn.Module):
    """Per-modality linear classifiers (B, D_m) -> (B, K), combined into (B, K) scores.

    ``combine``: ``mean`` averages the logits of the modalities present; ``learned`` weights them with a
    learned softmax over modalities; ``vote`` trains like ``mean`` but at inference takes the majority of the
    per-modality argmaxes (ties broken by the mean probability), returned as log vote shares.

    Each classifier also gets its own loss (on the logits ``forward_with_aux`` returns, weighted by
    ``unimodal_loss``), so every modality's decision stands on its own, as decision-level fusion assumes.

    Args:
        in_dims: ``{modality: D_m}`` of each encoder output.
        num_outputs: Number of logits K.
        combine: How the decisions are combined.
        dropout: Dropout on each embedding before its classifier.
        unimodal_loss: Weight of the per-modality losses.
    """

    emits_logits = True

    def __init__(
        self, in_dims: dict[str, int], num_outputs: int, combine: str, dropout: float, unimodal_loss: float
    ) -> None:
        super().__init__()
        self.keys, self.combine, self.unimodal_loss = sorted(in_dims), combine, unimodal_loss
        self.drop = nn.Dropout(dropout)
        self.classifiers = linear_per_modality(in_dims, num_outputs)
        self.scores = nn.Parameter(torch.zeros(len(self.keys))) if combine == "learned" else None
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
        z = torch.stack([per[k] for k in self.keys], dim=1)  # (B, M, K)
        w = presence(self.keys, present, z)  # (B, M)
        if self.scores is not None:
            alpha = masked_softmax(self.scores.to(z.dtype).expand_as(w), w)
            return (z * alpha.unsqueeze(-1)).sum(1), per
        if self.combine == "vote" and not self.training:
            votes = nn.functional.one_hot(z.argmax(-1), z.shape[-1]).to(z.dtype)  # (B, M, K)
            share = (votes * w.unsqueeze(-1)).sum(1) / w.sum(1, keepdim=True).clamp_min(1.0)
            tiebreak = masked_mean(z.softmax(-1), w) * 1e-3  # < one vote, so it only orders equal counts
            return torch.log(share + tiebreak + 1e-9), per
        return masked_mean(z, w), per  # (B, K)
