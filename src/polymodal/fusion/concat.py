"""Early (feature-level) fusion: concatenate the modality embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.fusion.base import pooled
from polymodal.registry import FUSIONS


@dataclass
class ConcatConfig:
    """Recipe keys for ``fusion: {name: concat}``."""

    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0


@FUSIONS.register("concat", ConcatConfig)
class ConcatFusion(nn.Module):
    """Concatenate embeddings in sorted key order: (B, D_a) + (B, D_b) -> (B, D_a + D_b).

    Token embeddings (B, T, D) are mean-pooled over T first. A missing modality is already a zero
    embedding, which is all early fusion can do with it.

    Args:
        in_dims: ``{modality: D}`` of each encoder output.
        num_outputs: Width of the head's output (unused: concat keeps the features).
        dropout: Dropout on the fused vector.
    """

    emits_logits = False

    def __init__(self, in_dims: dict[str, int], num_outputs: int, dropout: float) -> None:
        super().__init__()
        self.keys = sorted(in_dims)
        self.drop = nn.Dropout(dropout)
        self.out_dim = sum(in_dims.values())

    def forward(
        self, embeddings: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        return self.drop(torch.cat([pooled(embeddings[k]) for k in self.keys], dim=-1))  # (B, sum D)
