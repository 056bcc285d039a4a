"""A Transformer encoder over sensor series with a key-padding mask and masked pooling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.encoders.blocks import example_series, learned_positions, masked_mean_max, split_mask, transformer
from polymodal.registry import ENCODERS
from polymodal.schema import Heads, Width


@dataclass
class TSTransformerConfig:
    """Recipe keys for ``encoder: {name: ts_transformer}``."""

    width: Annotated[int, Field(ge=8, le=4096)] = 64
    heads: Heads = 4
    layers: Annotated[int, Field(ge=1, le=12)] = 2
    out_dim: Width = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


@ENCODERS.register("ts_transformer", TSTransformerConfig)
class TSTransformer(nn.Module):
    """Per-step linear projection + learned positions + pre-LN Transformer, (B, T, C + 1) -> (B, out_dim).

    Args:
        in_shape: One example's shape (T, C + 1); the last channel is the validity mask.
        channels: Number of value channels C.
        width: Model width D_m (divisible by ``heads``); layers: Transformer layers.
        out_dim: Embedding width D.
        dropout: Dropout in the layers and before the projection.
    """

    EXAMPLE_IN_SHAPE = (16, 4)
    EXAMPLE_CONTEXT = {"channels": 3}

    def __init__(
        self,
        in_shape: tuple[int, ...],
        channels: int,
        width: int,
        heads: int,
        layers: int,
        out_dim: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.inp = nn.Linear(channels, width)
        self.pos = learned_positions(in_shape[0], width)
        self.encoder = transformer("ts_transformer", width, heads, layers, dropout)
        self.proj = nn.Sequential(nn.LayerNorm(2 * width), nn.Dropout(dropout), nn.Linear(2 * width, out_dim))
        self.out_dim = out_dim

    @staticmethod
    def example_input(batch: int) -> torch.Tensor:
        return example_series(batch, TSTransformer.EXAMPLE_IN_SHAPE[0], TSTransformer.EXAMPLE_CONTEXT["channels"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values, mask = split_mask(x)  # (B, T, C), (B, T)
        h = self.inp(values) + self.pos[:, : x.shape[1]]  # (B, T, D_m)
        h = self.encoder(h, src_key_padding_mask=~mask)
        return self.proj(masked_mean_max(h, mask))  # (B, D)
