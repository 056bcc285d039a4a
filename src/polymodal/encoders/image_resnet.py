"""A small ResNet: a stem, stages of basic residual blocks (two 3×3 convs + identity/1×1 shortcut)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.registry import ENCODERS
from polymodal.schema import ConvWidth, Width


class BasicBlock(nn.Module):
    """``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``; the shortcut projects when shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


@dataclass
class ImageResNetConfig:
    """Recipe keys for ``encoder: {name: image_resnet}``."""

    width: ConvWidth = 32
    stages: Annotated[int, Field(ge=1, le=5)] = 3
    blocks: Annotated[int, Field(ge=1, le=4)] = 2  # residual blocks per stage
    out_dim: Width = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


@ENCODERS.register("image_resnet", ImageResNetConfig)
class ImageResNet(nn.Module):
    """ResNet-style CNN over (B, C, H, W) -> (B, out_dim); each stage after the first halves H and W.

    Args:
        in_shape: One example's shape (C, H, W).
        width: Channels of the first stage (doubling per stage); stages, blocks: depth.
        out_dim: Embedding width D; dropout: before the projection.
    """

    EXAMPLE_IN_SHAPE = (3, 32, 32)

    def __init__(
        self, in_shape: tuple[int, ...], width: int, stages: int, blocks: int, out_dim: int, dropout: float
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_shape[0], width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        c = width
        for s in range(stages):
            c_out = width * 2**s
            for b in range(blocks):
                layers.append(BasicBlock(c, c_out, 2 if (s > 0 and b == 0) else 1))
                c = c_out
        self.features = nn.Sequential(*layers)
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(c, out_dim), nn.ReLU())
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(x).mean(dim=(2, 3)))  # (B, D)
