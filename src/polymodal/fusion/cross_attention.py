"""Cross-modal attention (MulT-style, Tsai et al. 2019): each modality's tokens attend to every other's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.fusion.base import as_tokens, linear_per_modality
from polymodal.registry import FUSIONS
from polymodal.schema import Heads, Width


@dataclass
class CrossAttentionConfig:
    """Recipe keys for ``fusion: {name: cross_attention}``."""

    dim: Width = 64
    heads: Heads = 4
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


class CrossBlock(nn.Module):
    """Pre-LN cross-attention + MLP: target tokens (B, T_t, D) read source tokens (B, T_s, D)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_mlp = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim))

    def forward(self, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(source)
        x = target + self.attn(self.norm_q(target), kv, kv, need_weights=False)[0]
        return x + self.mlp(self.norm_mlp(x))  # (B, T_t, D)


@FUSIONS.register("cross_attention", CrossAttentionConfig)
class CrossAttentionFusion(nn.Module):
    """For every ordered pair (target, source) of modalities, the target's tokens attend to the source's;
    each result is mean-pooled and all are concatenated -> (B, M·(M−1)·D).

    Inputs may be token sequences (B, T, D_m), e.g. an image CNN's spatial grid or an audio CNN's frames
    (``tokens: true`` on those encoders), or vectors (B, D_m), which count as one token. When the source
    of a pair is missing its block output is zeroed; a missing target contributes zeros as well.

    Args:
        in_dims: ``{modality: D_m}`` of each encoder output.
        num_outputs: Unused (the head classifies).
        dim: Attention width D.
        heads: Attention heads (must divide D).
        dropout: Attention and MLP dropout.
    """

    emits_logits = False
    TOKENS = True  # encoders that can emit token sequences (tokens: true) are built that way for this fusion

    def __init__(self, in_dims: dict[str, int], num_outputs: int, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"cross_attention: dim {dim} must be divisible by heads {heads}")
        if len(in_dims) < 2:
            raise ValueError("cross_attention needs at least two inputs; use concat for one")
        self.keys = sorted(in_dims)
        self.pairs = [(t, s) for t in self.keys for s in self.keys if t != s]
        self.proj = linear_per_modality(in_dims, dim)
        self.blocks = nn.ModuleDict({f"{t}<-{s}": CrossBlock(dim, heads, dropout) for t, s in self.pairs})
        self.out_dim = len(self.pairs) * dim

    def forward(
        self, embeddings: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        tokens = {k: self.proj[k](as_tokens(embeddings[k])) for k in self.keys}  # each (B, T_m, D)
        outs = []
        for t, s in self.pairs:
            h = self.blocks[f"{t}<-{s}"](tokens[t], tokens[s]).mean(dim=1)  # (B, D)
            if present is not None:
                h = h * (present[t] & present[s]).to(h.dtype).unsqueeze(1)
            outs.append(h)
        return torch.cat(outs, dim=-1)  # (B, P·D)
