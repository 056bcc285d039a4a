"""A CNN over a (1, F, T) log-mel or MFCC map; frequency kept as features, time pooled."""

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
class AudioCNNConfig:
    """Recipe keys for ``encoder: {name: audio_cnn}``."""

    width: ConvWidth = 32
    depth: Annotated[int, Field(ge=1, le=6)] = 2
    out_dim: Width = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    # Emit one token per (downsampled) frame, (B, T', D), instead of the pooled vector; attention fusions set this.
    tokens: bool = False
    # group: GroupNorm, which normalises each example alone (needed by DP-SGD's per-sample gradients).
    norm: Norm = "batch"


@ENCODERS.register("audio_cnn", AudioCNNConfig)
class AudioCNN(nn.Module):
    """2-D CNN over spectrogram-like features (B, 1, F, T) returning (B, out_dim).

    After the conv stages each time step keeps all its channels × frequency bands as features (averaging over
    frequency would discard the spectral shape that tells phonemes apart). Time is pooled with mean and max
    together: a spoken word fills only part of the padded frames, and max-pooling keeps its evidence from
    being averaged away by the silence.

    Args:
        in_shape: One example's shape (1, F, T).
        width: Channels of the first stage; each further stage doubles them.
        depth: Number of conv stages (each halves F and T).
        out_dim: Embedding width D.
        dropout: Dropout before the projection.
        norm: ``batch`` (BatchNorm) or ``group`` (GroupNorm, per example).
        tokens: Project each frame's features into a token instead of pooling time.
    """

    EXAMPLE_IN_SHAPE = (1, 13, 40)

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
        bands = in_shape[1] // 2**depth
        if bands < 1:
            raise ValueError(f"audio_cnn: {in_shape[1]} feature bands cannot be halved {depth} times; lower depth")
        width_in = channels * bands if tokens else 2 * channels * bands
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(width_in, out_dim), nn.ReLU())
        self.out_dim, self.tokens = out_dim, tokens
        # One token per downsampled frame, holding every remaining band: a (1, T') grid over (F, T).
        self.hidden_dim, self.grid = channels * bands, (1, in_shape[2] // 2**depth)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame conv features before the projection: (B, T', C'·F')."""
        return self.features(x).flatten(1, 2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x).flatten(1, 2)  # (B, C'·F', T')
        if self.tokens:
            return self.proj(h.transpose(1, 2))  # (B, T', D)
        return self.proj(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))  # (B, D)
