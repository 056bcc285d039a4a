"""A conditional WGAN critic without batch norm, conditioned by projection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from polymodal.gan.condition import ConditionEmbedding
from polymodal.gan.generator import upsampling_plan
from polymodal.registry import CRITICS


@dataclass
class DCGANCriticConfig:
    """Recipe keys for ``critic: {name: dcgan}``."""

    width: Annotated[int, Field(ge=1)] = 32  # channels of the first stage; each later stage has twice as many
    feature_dim: Annotated[int, Field(ge=1)] = 256
    # The gradient penalty is per example, so batch norm (which mixes examples) is out; the WGAN-GP paper
    # suggests layer norm as the drop-in. "layer" normalises each example over (C, H, W).
    norm: Literal["none", "layer"] = "none"


@CRITICS.register("dcgan", DCGANCriticConfig)
class DCGANCritic(nn.Module):
    """Convolutional critic: (B, C, H, W) image, condition (B,) or (B, V) -> (B,) unbounded score.

    S stages of [4×4 conv stride 2, optional layer norm, LeakyReLU(0.2)] (S as the generator's upsampling
    stages), flatten, Linear + LeakyReLU to features φ(x) (B, F). Score (Miyato & Koyama 2018, projection
    discriminator): ``w·φ(x) + b + <embed(c), φ(x)>`` — the condition acts as a class- or caption-specific
    direction in feature space, which conditions more reliably than concatenating it to the input.

    Args:
        image_shape: (C, H, W); cond_kind: ``label`` or ``text``; cond_dim: classes or vocabulary size.
        width: First-stage channels; feature_dim: F; norm: ``none`` or ``layer``.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        cond_kind: str,
        cond_dim: int,
        width: int,
        feature_dim: int,
        norm: str = "none",
    ) -> None:
        super().__init__()
        channels, size, _ = image_shape
        side, stages = upsampling_plan(size)
        layers: list[nn.Module] = []
        c_in, c = channels, width
        for _ in range(stages):
            layers.append(nn.Conv2d(c_in, c, 4, stride=2, padding=1))
            if norm == "layer":
                layers.append(nn.GroupNorm(1, c))  # one group = layer norm over (C, H, W), per example
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            c_in, c = c, c * 2
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.features = nn.Sequential(nn.Linear(c_in * side * side, feature_dim), nn.LeakyReLU(0.2, inplace=True))
        self.out = nn.Linear(feature_dim, 1)
        self.cond = ConditionEmbedding(cond_kind, cond_dim, feature_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        phi = self.features(self.body(x))  # (B, F)
        return self.out(phi).squeeze(1) + (self.cond(c) * phi).sum(1)  # (B,)
