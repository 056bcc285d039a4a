"""Mean fusion: project every modality to one width and average the ones present."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.fusion.base import linear_per_modality, masked_mean, pooled, presence
from polymodal.registry import FUSIONS
from polymodal.schema import Width


@dataclass
class MeanConfig:
    """Recipe keys for ``fusion: {name: mean}``."""

    dim: Width = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0


@FUSIONS.register("mean", MeanConfig)
class MeanFusion(nn.Module):
    """Linear projection of each modality to (B, D), averaged over the modalities present -> (B, D).

    Unlike concat, a missing modality changes the divisor instead of feeding zeros, so the fused vector
    keeps its scale.

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
        self.drop = nn.Dropout(dropout)
        self.out_dim = dim

    def forward(
        self, embeddings: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        z = torch.stack([self.proj[k](pooled(embeddings[k])) for k in self.keys], dim=1)  # (B, M, D)
        return self.drop(masked_mean(z, presence(self.keys, present, z)))  # (B, D)
