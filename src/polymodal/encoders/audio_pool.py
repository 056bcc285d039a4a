"""An MLP over the mean and max of frame embeddings in time: the head for pretrained speech features."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.registry import ENCODERS
from polymodal.schema import Width


@dataclass
class AudioPoolConfig:
    """Recipe keys for ``encoder: {name: audio_pool}`` (use with ``preprocessing: {features: speech_embedding}``)."""

    hidden: Width = 256
    out_dim: Width = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.2


@ENCODERS.register("audio_pool", AudioPoolConfig)
class AudioPool(nn.Module):
    """(B, 1, F, T) frame features -> mean and max over T -> LayerNorm -> MLP -> (B, out_dim).

    The features are already a trained network's output (``features: speech_embedding``), so little is left to
    learn: pooling keeps where in the recording a word is out of it (mean for the whole, max for a short word's
    strongest window), and a one-hidden-layer MLP maps that to the embedding the fusion and head use.

    Args:
        in_shape: One example's shape (1, F, T).
        hidden: Width of the hidden layer; out_dim: embedding width D; dropout: on the input and hidden layer.
    """

    EXAMPLE_IN_SHAPE = (1, 96, 9)

    def __init__(self, in_shape: tuple[int, ...], hidden: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        width = 2 * in_shape[0] * in_shape[1]
        self.mlp = nn.Sequential(
            nn.LayerNorm(width),
            nn.Dropout(dropout),
            nn.Linear(width, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, out_dim),
            nn.ReLU(),
        )
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1, 2)  # (B, C·F, T)
        return self.mlp(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))  # (B, D)
