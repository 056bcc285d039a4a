"""Weighted-sum fusion: a learned softmax weight per modality over shared-width projections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.fusion.base import linear_per_modality, masked_softmax, pooled, presence
from polymodal.registry import FUSIONS
from polymodal.schema import Width


@dataclass
class WeightedConfig:
    """Recipe keys for ``fusion: {name: weighted}``."""

    dim: Width = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0


@FUSIONS.register("weighted", WeightedConfig)
class WeightedFusion(nn.Module):
    """``sum_m softmax(a)_m · W_m e_m`` -> (B, D), with one learned scalar ``a_m`` per modality.

    The weights are global (the same for every sample); ``weights()`` reports them, which shows how much the
    model trusts each modality. A missing modality is left out and the others' weights renormalised.

    Args:
        in_dims: ``{modality: D_m}`` of each encoder output.
        num_outputs: Unused (the head classifies).
        dim: Shared width D.
        dropout: Dropout on the fused vector.
    """

    emits_logits = False

    def __init__(self, in_dims: dict[str, int], num_outputs: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.keys = sorted(in_dims)
        self.proj = linear_per_modality(in_dims, dim)
        self.scores = nn.Parameter(torch.zeros(len(self.keys)))  # equal weights at the start
        self.drop = nn.Dropout(dropout)
        self.out_dim = dim

    def weights(self) -> dict[str, float]:
        return dict(zip(self.keys, self.scores.softmax(0).tolist(), strict=True))

    def forward(
        self, embeddings: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        z = torch.stack([self.proj[k](pooled(embeddings[k])) for k in self.keys], dim=1)  # (B, M, D)
        w = presence(self.keys, present, z)
        alpha = masked_softmax(self.scores.to(z.dtype).expand_as(w), w)  # (B, M)
        return self.drop((z * alpha.unsqueeze(-1)).sum(1))  # (B, D)
