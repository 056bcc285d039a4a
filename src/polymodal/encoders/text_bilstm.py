"""A bidirectional LSTM over token embeddings with masked mean + max pooling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from polymodal.encoders.blocks import example_tokens, masked_mean_max
from polymodal.registry import ENCODERS
from polymodal.schema import Width


@dataclass
class TextBiLSTMConfig:
    """Recipe keys for ``encoder: {name: text_bilstm}``."""

    embed_dim: Width = 64
    hidden: Width = 64
    out_dim: Width = 64
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


@ENCODERS.register("text_bilstm", TextBiLSTMConfig)
class TextBiLSTM(nn.Module):
    """BiLSTM over (B, T) token ids (padding skipped via packing) -> (B, out_dim).

    Args:
        in_shape: One example's shape (T,).
        vocab_size: Token vocabulary size V; pad_id: id of padding.
        embed_dim: Embedding width; hidden: LSTM state width per direction.
        out_dim: Output width D; dropout: before the projection.
    """

    EXAMPLE_IN_SHAPE = (12,)
    EXAMPLE_CONTEXT = {"vocab_size": 50, "pad_id": 0}

    def __init__(
        self,
        in_shape: tuple[int, ...],
        vocab_size: int,
        pad_id: int,
        embed_dim: int,
        hidden: int,
        out_dim: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden, batch_first=True, bidirectional=True)
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * hidden, out_dim), nn.ReLU())
        self.out_dim, self.hidden_dim = out_dim, 2 * hidden

    @staticmethod
    def example_input(batch: int) -> torch.Tensor:
        return example_tokens(batch, TextBiLSTM.EXAMPLE_IN_SHAPE[0], TextBiLSTM.EXAMPLE_CONTEXT["vocab_size"])

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Both directions' states per token position: (B, T, 2H) (zeros past each text's end)."""
        lengths = (x != self.pad_id).sum(1).clamp_min(1).cpu()  # an empty text still runs one (padding) step
        packed = pack_padded_sequence(self.embed(x), lengths, batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=x.shape[1])[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = x != self.pad_id  # (B, T)
        h = self.hidden(x)  # (B, T, 2H)
        mask = mask.clone()
        mask[:, 0] |= ~mask.any(1)  # pool the padding step of empty texts rather than nothing
        return self.proj(masked_mean_max(h, mask))  # (B, D)
