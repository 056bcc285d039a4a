"""A conditional DCGAN generator: noise + condition embedding -> image in [-1, 1]."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.gan.condition import ConditionEmbedding
from polymodal.registry import GENERATORS


def upsampling_plan(size: int) -> tuple[int, int]:
    """(start side, number of 2× stages) for an output of ``size``: halve while even and above 7, so 28 starts
    at 7 with 2 stages (as the WGAN-GP MNIST model), 32 at 4 with 3 and 64 at 4 with 4."""
    side, stages = size, 0
    while side % 2 == 0 and side > 7:
        side, stages = side // 2, stages + 1
    return side, stages


@dataclass
class DCGANGeneratorConfig:
    """Recipe keys for ``generator: {name: dcgan}``."""

    z_dim: Annotated[int, Field(ge=1)] = 64
    width: Annotated[int, Field(ge=1)] = 32  # channels of the last stage; each earlier stage has twice as many
    embed_dim: Annotated[int, Field(ge=1)] = 32  # condition embedding width


@GENERATORS.register("dcgan", DCGANGeneratorConfig)
class DCGANGenerator(nn.Module):
    """DCGAN-style generator (Radford et al. 2016) conditioned by concatenating a condition embedding to the
    noise (Mirza & Osindero 2014): (B, z_dim) noise, condition (B,) or (B, V) -> (B, C, H, W) in [-1, 1].

    Linear -> (B, width·2^S, s, s), then S stages of [4×4 transposed conv stride 2, BatchNorm, ReLU] halving
    the channels, then a 3×3 conv to C channels and tanh. Batch norm is fine in the generator; WGAN-GP only
    rules it out in the critic.

    Args:
        image_shape: (C, H, W) with H == W.
        cond_kind: ``label`` or ``text``; cond_dim: number of classes or vocabulary size.
        z_dim: Noise width; width: channels of the last stage; embed_dim: condition embedding width.
    """

    def __init__(
        self, image_shape: tuple[int, int, int], cond_kind: str, cond_dim: int, z_dim: int, width: int, embed_dim: int
    ) -> None:
        super().__init__()
        channels, size, _ = image_shape
        self.side, stages = upsampling_plan(size)
        self.z_dim, self.image_shape, self.c0 = z_dim, tuple(image_shape), width * 2**stages
        self.cond = ConditionEmbedding(cond_kind, cond_dim, embed_dim)
        self.project = nn.Sequential(
            nn.Linear(z_dim + embed_dim, self.c0 * self.side**2, bias=False),
            nn.BatchNorm1d(self.c0 * self.side**2),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        c = self.c0
        for _ in range(stages):
            layers += [
                nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c // 2),
                nn.ReLU(inplace=True),
            ]
            c //= 2
        layers += [nn.Conv2d(c, channels, 3, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, self.cond(c)], dim=1))  # (B, c0·s·s)
        return self.body(h.view(-1, self.c0, self.side, self.side))  # (B, C, H, W)
