"""Model-level fusion with shared layers: per-modality adapters into one space, then layers all share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.fusion.base import linear_per_modality, masked_mean, pooled, presence
from polymodal.registry import FUSIONS
from polymodal.schema import Layers, Width


@dataclass
class SharedConfig:
    """Recipe keys for ``fusion: {name: shared}``."""

    dim: Width = 128
    layers: Layers = 2
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


@FUSIONS.register("shared", SharedConfig)
class SharedFusion(nn.Module):
    """``adapter_m`` maps modality m to (B, D); the same residual MLP layers then process every modality's
    vector, and the results are averaged over the modalities present -> (B, D).

    Because the upper layers are shared, a digit heard and a digit seen must land in one representation
    that those layers can read; each modality's adapter is all that is specific to it.

    Args:
        in_dims: ``{modality: D_m}`` of each encoder output.
        num_outputs: Unused (the head classifies).
        dim: Shared width D.
        layers: Number of shared residual MLP layers.
        dropout: Dropout inside the shared layers.
    """

    emits_logits = False

    def __init__(self, in_dims: dict[str, int], num_outputs: int, dim: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.keys = sorted(in_dims)
        self.adapters = linear_per_modality(in_dims, dim)
        self.shared = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout)) for _ in range(layers)
        )
        self.out_dim = dim

    def forward(
        self, embeddings: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        h = torch.stack([self.adapters[k](pooled(embeddings[k])) for k in self.keys], dim=1)  # (B, M, D)
        for blk in self.shared:
            h = h + blk(h)
        return masked_mean(h, presence(self.keys, present, h))  # (B, D)
