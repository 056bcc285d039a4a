"""Tensor fusion (TFN, Zadeh et al. 2017): the outer product of the modality vectors, each extended by 1."""

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
class TensorConfig:
    """Recipe keys for ``fusion: {name: tensor}``."""

    # The product has (dim+1)^M features: 64 with three modalities is 275k, a 35M-parameter layer at out_dim 128.
    dim: Annotated[int, Field(ge=1, le=64)] = 16
    out_dim: Width = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


def tensor_product(zs: list[torch.Tensor]) -> torch.Tensor:
    """``[z_1; 1] ⊗ [z_2; 1] ⊗ ...`` flattened: (B, D_1) ... -> (B, Π (D_m + 1)).

    The appended 1 keeps every lower-order term: the product holds each z_m alone, every pair, and so on,
    so unimodal evidence survives next to the interactions.
    """
    out = None
    for z in zs:
        z1 = torch.cat([z, torch.ones_like(z[:, :1])], dim=1)  # (B, D_m + 1)
        out = z1 if out is None else (out.unsqueeze(2) * z1.unsqueeze(1)).flatten(1)
    assert out is not None
    return out


@FUSIONS.register("tensor", TensorConfig)
class TensorFusion(nn.Module):
    """Project each modality to (B, d), take the extended outer product (B, (d+1)^M), map it to (B, out_dim).

    The product grows as (d+1)^M, so ``dim`` is kept small (16: 289 features for two modalities, 4,913 for
    three). A missing modality is a zero vector, whose extended form [0; 1] keeps the others' terms.

    Args:
        in_dims: ``{modality: D_m}`` of each encoder output.
        num_outputs: Unused (the head classifies).
        dim: Width d of each projected modality vector.
        out_dim: Width of the fused output.
        dropout: Dropout on the flattened product.
    """

    emits_logits = False

    def __init__(self, in_dims: dict[str, int], num_outputs: int, dim: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.keys = sorted(in_dims)
        self.proj = nn.ModuleDict({k: nn.Sequential(nn.Linear(in_dims[k], dim), nn.ReLU()) for k in self.keys})
        self.post = nn.Sequential(nn.Dropout(dropout), nn.Linear((dim + 1) ** len(self.keys), out_dim), nn.ReLU())
        self.out_dim = out_dim

    def forward(
        self, embeddings: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        zs = [self.proj[k](pooled(embeddings[k])) for k in self.keys]
        if present is not None:
            zs = [z * present[k].to(z.dtype).unsqueeze(1) for z, k in zip(zs, self.keys, strict=True)]
        return self.post(tensor_product(zs))  # (B, out_dim)
