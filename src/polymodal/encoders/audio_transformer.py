"""A Transformer over spectrogram frames: each frame's F features are one token."""

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
class AudioTransformerConfig:
    """Recipe keys for ``encoder: {name: audio_transformer}``."""

    width: Annotated[int, Field(ge=8, le=4096)] = 64
    heads: Heads = 4
    layers: Annotated[int, Field(ge=1, le=12)] = 2
    out_dim: Width = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


@ENCODERS.register("audio_transformer", AudioTransformerConfig)
class AudioTransformer(nn.Module):
    """(B, 1, F, T) features -> T frame tokens -> pre-LN Transformer -> mean over frames -> (B, out_dim).

    Args:
        in_shape: One example's shape (1, F, T).
        width: Token width (divisible by ``heads``); layers: Transformer layers.
        out_dim: Embedding width D; dropout: in the layers.
    """

    EXAMPLE_IN_SHAPE = (1, 13, 20)

    def __init__(
        self, in_shape: tuple[int, ...], width: int, heads: int, layers: int, out_dim: int, dropout: float
    ) -> None:
        super().__init__()
        _, f, t = in_shape
        self.inp = nn.Linear(f, width)
        self.pos = learned_positions(t, width)
        self.encoder = transformer("audio_transformer", width, heads, layers, dropout)
        self.proj = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, out_dim))
        self.out_dim = out_dim
        self.hidden_dim, self.grid = width, (1, t)  # one token per frame: a (1, T) grid over (F, T)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """One token per frame: (B, T, W)."""
        frames = x[:, 0].transpose(1, 2)  # (B, T, F)
        return self.encoder(self.inp(frames) + self.pos[:, : frames.shape[1]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.hidden(x).mean(dim=1))  # (B, D)
