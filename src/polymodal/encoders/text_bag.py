"""Bag of embeddings (fastText-style): masked mean of token embeddings, then a projection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.encoders.blocks import example_tokens
from polymodal.registry import ENCODERS
from polymodal.schema import Width


@dataclass
class TextBagConfig:
    """Recipe keys for ``encoder: {name: text_bag}``."""

    embed_dim: Width = 64
    out_dim: Width = 64
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


@ENCODERS.register("text_bag", TextBagConfig)
class TextBag(nn.Module):
    """Average of the embeddings of non-padding tokens, (B, T) ids -> (B, out_dim).

    Args:
        in_shape: One example's shape (T,).
        vocab_size: Token vocabulary size V; pad_id: id of padding (never embedded into the mean).
        embed_dim: Embedding width; out_dim: output width D; dropout: before the projection.
    """

    EXAMPLE_IN_SHAPE = (12,)
    EXAMPLE_CONTEXT = {"vocab_size": 50, "pad_id": 0}

    def __init__(
        self, in_shape: tuple[int, ...], vocab_size: int, pad_id: int, embed_dim: int, out_dim: int, dropout: float
    ) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(embed_dim, out_dim), nn.ReLU())
        self.out_dim = out_dim

    @staticmethod
    def example_input(batch: int) -> torch.Tensor:
        return example_tokens(batch, TextBag.EXAMPLE_IN_SHAPE[0], TextBag.EXAMPLE_CONTEXT["vocab_size"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = (x != self.pad_id).unsqueeze(-1).float()  # (B, T, 1)
        e = self.embed(x) * mask  # (B, T, E)
        return self.proj(e.sum(1) / mask.sum(1).clamp_min(1.0))  # (B, D)
