"""Gated multimodal unit (GMU, Arevalo et al. 2017): a per-sample gate chooses how much of each modality."""

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
class GatedConfig:
    """Recipe keys for ``fusion: {name: gated}``."""

    dim: Width = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0


@FUSIONS.register("gated", GatedConfig)
class GatedFusion(nn.Module):
    """``h = Σ_m g_m · tanh(W_m e_m)`` with gates ``g = softmax(W_g [e_1; ...; e_M])`` -> (B, D).

    The gate sees every modality at once, so it can lower the weight of one that looks unreliable for this
    sample (noisy image, silent audio). With two modalities the softmax equals the GMU's sigmoid gate.
    Missing modalities get gate 0.

    Args:
        in_dims: ``{modality: D_m}`` of each encoder output.
        num_outputs: Unused (the head classifies).
        dim: Width D of the fused vector.
        dropout: Dropout on the fused vector.
    """

    emits_logits = False

    def __init__(self, in_dims: dict[str, int], num_outputs: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.keys = sorted(in_dims)
        self.proj = linear_per_modality(in_dims, dim)
        self.gate = nn.Linear(sum(in_dims.values()), len(self.keys))
        self.drop = nn.Dropout(dropout)
        self.out_dim = dim
        self.last_gates: torch.Tensor | None = None  # (B, M) of the last forward, for inspection

    def forward(
        self, embeddings: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        e = [pooled(embeddings[k]) for k in self.keys]
        h = torch.stack([torch.tanh(self.proj[k](x)) for k, x in zip(self.keys, e, strict=True)], dim=1)  # (B,M,D)
        g = masked_softmax(self.gate(torch.cat(e, dim=-1)), presence(self.keys, present, h))  # (B, M)
        self.last_gates = g.detach()
        return self.drop((h * g.unsqueeze(-1)).sum(1))  # (B, D)
