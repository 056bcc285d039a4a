"""A small VGG-style CNN for images: conv stages, global average pool, linear projection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.encoders.blocks import Norm, conv_stack
from polymodal.registry import ENCODERS
from polymodal.schema import ConvWidth, Width


@dataclass
class ImageCNNConfig:
    """Recipe keys for ``encoder: {name: image_cnn}``."""

    width: ConvWidth = 32
    depth: Annotated[int, Field(ge=1, le=6)] = 2
    out_dim: Width = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    # Emit the spatial grid as tokens (B, H'·W', D) instead of the pooled vector; attention fusions set this.
    tokens: bool = False
    # group: GroupNorm, which normalises each example alone (needed by DP-SGD's per-sample gradients).
    norm: Norm = "batch"


@ENCODERS.register("image_cnn", ImageCNNConfig)
class ImageCNN(nn.Module):
    """Small CNN over (B, C, H, W) images returning (B, out_dim), or (B, H'·W', out_dim) grid tokens.

    Args:
        in_shape: One example's shape (C, H, W).
        width: Channels of the first stage; each further stage doubles them.
        depth: Number of conv stages (each halves H and W).
        out_dim: Embedding width D.
        dropout: Dropout before the projection.
        norm: ``batch`` (BatchNorm) or ``group`` (GroupNorm, per example).
        tokens: Project every grid position instead of their mean (same weights, one token per position).
    """

    EXAMPLE_IN_SHAPE = (1, 28, 28)

    def __init__(
        self,
        in_shape: tuple[int, ...],
        width: int,
        depth: int,
        out_dim: int,
        dropout: float,
        tokens: bool = False,
        norm: Norm = "batch",
    ) -> None:
        super().__init__()
        self.features, channels = conv_stack(in_shape[0], width, depth, norm)
        # Identity keeps the parameter names of runs saved when this slot held a Flatten.
        self.proj = nn.Sequential(nn.Identity(), nn.Dropout(dropout), nn.Linear(channels, out_dim), nn.ReLU())
        self.out_dim, self.tokens = out_dim, tokens
        # Each conv stage halves H and W (max-pool floors), so grid cell (i, j) sees pixels of block (i, j).
        self.hidden_dim, self.grid = channels, (in_shape[1] // 2**depth, in_shape[2] // 2**depth)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The conv feature map as grid tokens before the projection: (B, H'·W', C'), row-major."""
        return self.features(x).flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)  # (B, C', H', W')
        if self.tokens:
            return self.proj(h.flatten(2).transpose(1, 2))  # (B, H'·W', D)
        return self.proj(h.mean(dim=(2, 3)))  # (B, D)
