"""A 1-D CNN over sensor series with masked mean+max pooling over time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.encoders.blocks import Norm, example_series, masked_mean_max, norm_layer, split_mask
from polymodal.registry import ENCODERS
from polymodal.schema import ConvWidth, Width


@dataclass
class TSCNNConfig:
    """Recipe keys for ``encoder: {name: ts_cnn}``."""

    width: ConvWidth = 64
    depth: Annotated[int, Field(ge=1, le=8)] = 3
    kernel: Annotated[int, Field(ge=1, le=64)] = 5  # past 64 steps a kernel is a dense layer: width² × kernel
    out_dim: Width = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    # group: GroupNorm, which normalises each example alone (needed by DP-SGD's per-sample gradients).
    norm: Norm = "batch"


@ENCODERS.register("ts_cnn", TSCNNConfig)
class TSCNN(nn.Module):
    """Same-length 1-D convolutions (BN, ReLU) over (B, T, C + 1) series, returning (B, out_dim).

    Args:
        in_shape: One example's shape (T, C + 1); the last channel is the validity mask.
        channels: Number of value channels C.
        width: Conv channels; depth: number of conv layers; kernel: temporal kernel size.
        out_dim: Embedding width D.
        dropout: Dropout before the projection.
        norm: ``batch`` (BatchNorm) or ``group`` (GroupNorm, per example).
    """

    EXAMPLE_IN_SHAPE = (24, 4)
    EXAMPLE_CONTEXT = {"channels": 3}

    def __init__(
        self,
        in_shape: tuple[int, ...],
        channels: int,
        width: int,
        depth: int,
        kernel: int,
        out_dim: int,
        dropout: float,
        norm: Norm = "batch",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = channels
        for _ in range(depth):
            layers += [nn.Conv1d(c_in, width, kernel, padding=kernel // 2), norm_layer(norm, width, dims=1), nn.ReLU()]
            c_in = width
        self.convs = nn.Sequential(*layers)
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * width, out_dim), nn.ReLU())
        self.out_dim = out_dim

    @staticmethod
    def example_input(batch: int) -> torch.Tensor:
        return example_series(batch, *TSCNN.EXAMPLE_IN_SHAPE[:1], TSCNN.EXAMPLE_CONTEXT["channels"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values, mask = split_mask(x)  # (B, T, C), (B, T)
        h = self.convs((values * mask.unsqueeze(-1)).transpose(1, 2)).transpose(1, 2)  # (B, T, width)
        return self.proj(masked_mean_max(h, mask))  # (B, D)
