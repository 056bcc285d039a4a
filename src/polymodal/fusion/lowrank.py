"""Low-rank multimodal fusion (LMF, Liu et al. 2018): tensor fusion with a rank-R weight tensor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.fusion.base import pooled
from polymodal.registry import FUSIONS
from polymodal.schema import Width


@dataclass
class LowRankConfig:
    """Recipe keys for ``fusion: {name: lowrank}``."""

    rank: Annotated[int, Field(ge=1, le=256)] = (
        4  # factors are (rank, D+1, out_dim) per modality; 256 is far past the paper's 4-16
    )
    out_dim: Width = 64
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


def lowrank_product(zs: list[torch.Tensor], factors: list[torch.Tensor]) -> torch.Tensor:
    """``Σ_r Π_m [z_m; 1] · F_m[r]``: (B, D_m) and factors (R, D_m + 1, O) -> (B, O).

    Equal to ``tensor_product(zs) @ W`` for the full weight tensor ``W = Σ_r ⊗_m F_m[r]``, without ever
    forming the (B, Π (D_m + 1)) product: cost is linear in the number of modalities, not exponential.
    """
    out = None
    for z, f in zip(zs, factors, strict=True):
        z1 = torch.cat([z, torch.ones_like(z[:, :1])], dim=1)  # (B, D_m + 1)
        proj = torch.einsum("bd,rdo->bro", z1, f)  # (B, R, O)
        out = proj if out is None else out * proj
    assert out is not None
    return out.sum(dim=1)  # (B, O)


@FUSIONS.register("lowrank", LowRankConfig)
class LowRankFusion(nn.Module):
    """Rank-``rank`` tensor fusion of the raw encoder outputs -> (B, out_dim).

    Args:
        in_dims: ``{modality: D_m}`` of each encoder output.
        num_outputs: Unused (the head classifies).
        rank: Rank R of the weight tensor.
        out_dim: Width O of the fused output.
        dropout: Dropout on the output.
    """

    emits_logits = False

    def __init__(self, in_dims: dict[str, int], num_outputs: int, rank: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.keys = sorted(in_dims)
        # Each modality's factor starts near the identity-like scale of a linear layer, so the product of M
        # factors neither vanishes nor explodes at initialisation.
        self.factors = nn.ParameterList(
            [nn.Parameter(torch.randn(rank, in_dims[k] + 1, out_dim) / (in_dims[k] + 1) ** 0.5) for k in self.keys]
        )
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.norm = nn.LayerNorm(out_dim)
        self.drop = nn.Dropout(dropout)
        self.out_dim = out_dim

    def forward(
        self, embeddings: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        zs = [pooled(embeddings[k]) for k in self.keys]
        if present is not None:
            zs = [z * present[k].to(z.dtype).unsqueeze(1) for z, k in zip(zs, self.keys, strict=True)]
        factors = [f.to(zs[0].dtype) for f in self.factors]
        return self.drop(torch.relu(self.norm(lowrank_product(zs, factors) + self.bias)))  # (B, O)
