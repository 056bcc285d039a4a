"""Video: a small CNN on every frame, then mean pooling or a temporal Transformer over the frames."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from polymodal.encoders.blocks import conv_stack, learned_positions
from polymodal.registry import ENCODERS
from polymodal.schema import ConvWidth, Heads, Width


@dataclass
class VideoCNNConfig:
    """Recipe keys for ``encoder: {name: video_cnn}``."""

    width: ConvWidth = 16
    depth: Annotated[int, Field(ge=1, le=6)] = 2
    temporal: Literal["mean", "transformer"] = "transformer"
    heads: Heads = 4
    out_dim: Width = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


@ENCODERS.register("video_cnn", VideoCNNConfig)
class VideoCNN(nn.Module):
    """(B, T, C, H, W) -> per-frame CNN features (B, T, D) -> temporal mixing -> mean over T -> (B, out_dim).

    Args:
        in_shape: One example's shape (T, C, H, W).
        width, depth: The per-frame CNN (as image_cnn).
        temporal: ``mean`` (order-free) or ``transformer`` (one pre-LN layer with learned frame positions).
        heads: Attention heads of the temporal layer (must divide out_dim).
        out_dim: Embedding width D; dropout: in the temporal layer and before the projection.
    """

    EXAMPLE_IN_SHAPE = (4, 1, 16, 16)

    def __init__(
        self, in_shape: tuple[int, ...], width: int, depth: int, temporal: str, heads: int, out_dim: int, dropout: float
    ) -> None:
        super().__init__()
        t, c = in_shape[0], in_shape[1]
        self.features, channels = conv_stack(c, width, depth)
        self.frame_proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, out_dim), nn.ReLU())
        self.temporal: nn.Module | None = None
        if temporal == "transformer":
            if out_dim % heads:
                raise ValueError(f"video_cnn: out_dim {out_dim} must be divisible by heads {heads}")
            self.pos = learned_positions(t, out_dim)
            self.temporal = nn.TransformerEncoderLayer(
                out_dim, heads, 2 * out_dim, dropout, batch_first=True, norm_first=True
            )
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        h = self.features(x.flatten(0, 1)).mean(dim=(2, 3))  # (B·T, C')
        h = self.frame_proj(h).view(b, t, -1)  # (B, T, D)
        if self.temporal is not None:
            h = self.temporal(h + self.pos[:, :t])
        return h.mean(dim=1)  # (B, D)
