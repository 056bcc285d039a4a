"""A small VGG-style CNN for images: conv stages, global average pool, linear projection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.encoders.blocks import conv_stack
from polymodal.registry import ENCODERS


@dataclass
class ImageCNNConfig:
    """Recipe keys for ``encoder: {name: image_cnn}``."""

    width: Annotated[int, Field(ge=1)] = 32
    depth: Annotated[int, Field(ge=1, le=6)] = 2
    out_dim: Annotated[int, Field(ge=1)] = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


@ENCODERS.register("image_cnn", ImageCNNConfig)
class ImageCNN(nn.Module):
    """Small CNN over (B, C, H, W) images returning (B, out_dim).

    Args:
        in_shape: One example's shape (C, H, W).
        width: Channels of the first stage; each further stage doubles them.
        depth: Number of conv stages (each halves H and W).
        out_dim: Embedding width D.
        dropout: Dropout before the projection.
    """

    EXAMPLE_IN_SHAPE = (1, 28, 28)

    def __init__(self, in_shape: tuple[int, ...], width: int, depth: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.features, channels = conv_stack(in_shape[0], width, depth)
        self.proj = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, out_dim), nn.ReLU())
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)  # (B, C', H', W')
        return self.proj(h.mean(dim=(2, 3)))  # (B, D)
