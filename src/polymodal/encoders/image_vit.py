"""A Vision Transformer: patch embedding, a CLS token, learned positions, pre-LN Transformer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.encoders.blocks import learned_positions, transformer
from polymodal.registry import ENCODERS
from polymodal.schema import Heads, Width


@dataclass
class ImageViTConfig:
    """Recipe keys for ``encoder: {name: image_vit}``."""

    patch: Annotated[int, Field(ge=1, le=64)] = 4  # a 64² RGB patch is a 12,288-wide input to the embedding
    width: Annotated[int, Field(ge=8, le=4096)] = 64
    heads: Heads = 4
    layers: Annotated[int, Field(ge=1, le=12)] = 4
    out_dim: Width = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


@ENCODERS.register("image_vit", ImageViTConfig)
class ImageViT(nn.Module):
    """ViT over (B, C, H, W): (H/p)·(W/p) patch tokens + CLS -> CLS output projected to (B, out_dim).

    Args:
        in_shape: One example's shape (C, H, W); H and W must be multiples of ``patch``.
        patch: Patch side p; width: token width (divisible by ``heads``); layers: Transformer layers.
        out_dim: Embedding width D; dropout: in the layers.
    """

    EXAMPLE_IN_SHAPE = (1, 28, 28)

    def __init__(
        self, in_shape: tuple[int, ...], patch: int, width: int, heads: int, layers: int, out_dim: int, dropout: float
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        if h % patch or w % patch:
            raise ValueError(f"image_vit: image {h}×{w} is not a multiple of patch {patch}; change size or patch")
        self.patchify = nn.Conv2d(c, width, patch, patch)  # one linear map per non-overlapping patch
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = learned_positions(1 + (h // patch) * (w // patch), width)
        self.encoder = transformer("image_vit", width, heads, layers, dropout)
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, out_dim)
        self.out_dim = out_dim
        # Token layout for objectives that read every token (masked patch modelling): CLS first, then the
        # (H/p)×(W/p) patch grid in row-major order.
        self.hidden_dim, self.hidden_prefix, self.grid = width, 1, (h // patch, w // patch)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Every output token, normalised: (B, 1 + N, W), CLS first."""
        tokens = self.patchify(x).flatten(2).transpose(1, 2)  # (B, N, W)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1) + self.pos  # (B, 1 + N, W)
        return self.norm(self.encoder(tokens))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.hidden(x)[:, 0])  # (B, D)
