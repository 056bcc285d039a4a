"""A GRU or LSTM over sensor series; padding is skipped with packed sequences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from polymodal.encoders.blocks import example_series, masked_mean_max, split_mask
from polymodal.registry import ENCODERS
from polymodal.schema import Width


@dataclass
class TSRNNConfig:
    """Recipe keys for ``encoder: {name: ts_rnn}``."""

    cell: Literal["gru", "lstm"] = "gru"
    hidden: Width = 64
    layers: Annotated[int, Field(ge=1, le=4)] = 1
    bidirectional: bool = True
    out_dim: Width = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


@ENCODERS.register("ts_rnn", TSRNNConfig)
class TSRNN(nn.Module):
    """Recurrent encoder over (B, T, C + 1) series, masked mean+max of the outputs -> (B, out_dim).

    Args:
        in_shape: One example's shape (T, C + 1); the last channel is the validity mask.
        channels: Number of value channels C.
        cell: ``gru`` or ``lstm``; hidden: state width; layers: stacked layers; bidirectional: both directions.
        out_dim: Embedding width D.
        dropout: Dropout before the projection.
    """

    EXAMPLE_IN_SHAPE = (20, 4)
    EXAMPLE_CONTEXT = {"channels": 3}

    def __init__(
        self,
        in_shape: tuple[int, ...],
        channels: int,
        cell: str,
        hidden: int,
        layers: int,
        bidirectional: bool,
        out_dim: int,
        dropout: float,
    ) -> None:
        super().__init__()
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = rnn(channels, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional)
        width = hidden * (2 if bidirectional else 1)
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * width, out_dim), nn.ReLU())
        self.out_dim = out_dim

    @staticmethod
    def example_input(batch: int) -> torch.Tensor:
        return example_series(batch, TSRNN.EXAMPLE_IN_SHAPE[0], TSRNN.EXAMPLE_CONTEXT["channels"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values, mask = split_mask(x)  # (B, T, C), (B, T)
        lengths = mask.sum(1).clamp_min(1).cpu()
        packed = pack_padded_sequence(values, lengths, batch_first=True, enforce_sorted=False)
        h, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=x.shape[1])  # (B, T, W)
        return self.proj(masked_mean_max(h, mask))  # (B, D)
