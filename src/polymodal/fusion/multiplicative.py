"""Multiplicative interactions (Jayakumar et al. 2020): modalities gate each other elementwise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.fusion.base import linear_per_modality, pooled
from polymodal.registry import FUSIONS
from polymodal.schema import Width


@dataclass
class MultiplicativeConfig:
    """Recipe keys for ``fusion: {name: multiplicative}``."""

    dim: Width = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0


@FUSIONS.register("multiplicative", MultiplicativeConfig)
class MultiplicativeFusion(nn.Module):
    """``Π_m (1 + z_m) − 1`` with ``z_m = W_m e_m``, layer-normalised -> (B, D).

    For two modalities this is ``z_a + z_b + z_a ⊙ z_b``: the additive terms of a sum fusion plus the
    elementwise product through which one modality scales the other's features. A missing modality has
    z = 0, so its factor is 1 and the remaining terms are exactly the others'.

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
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.out_dim = dim

    def forward(
        self, embeddings: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        out = None
        for k in self.keys:
            z = self.proj[k](pooled(embeddings[k]))  # (B, D)
            if present is not None:
                z = z * present[k].to(z.dtype).unsqueeze(1)
            out = 1 + z if out is None else out * (1 + z)
        assert out is not None
        return self.drop(self.norm(out - 1))  # (B, D)
