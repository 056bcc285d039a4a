"""A Transformer encoder over token embeddings with a key-padding mask and masked mean pooling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.encoders.blocks import example_tokens, learned_positions, transformer
from polymodal.registry import ENCODERS
from polymodal.schema import Heads, Width


@dataclass
class TextTransformerConfig:
    """Recipe keys for ``encoder: {name: text_transformer}``."""

    width: Annotated[int, Field(ge=8, le=4096)] = 64
    heads: Heads = 4
    layers: Annotated[int, Field(ge=1, le=12)] = 2
    out_dim: Width = 64
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


@ENCODERS.register("text_transformer", TextTransformerConfig)
class TextTransformer(nn.Module):
    """Token + learned position embeddings, pre-LN Transformer, masked mean -> (B, out_dim).

    Args:
        in_shape: One example's shape (T,).
        vocab_size: Token vocabulary size V; pad_id: id of padding (masked out of attention and pooling).
        width: Model width (divisible by ``heads``); layers: Transformer layers.
        out_dim: Output width D; dropout: in the layers.
    """

    EXAMPLE_IN_SHAPE = (12,)
    EXAMPLE_CONTEXT = {"vocab_size": 50, "pad_id": 0}

    def __init__(
        self,
        in_shape: tuple[int, ...],
        vocab_size: int,
        pad_id: int,
        width: int,
        heads: int,
        layers: int,
        out_dim: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, width)
        self.pos = learned_positions(in_shape[0], width)
        self.encoder = transformer("text_transformer", width, heads, layers, dropout)
        self.proj = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, out_dim))
        self.out_dim, self.hidden_dim = out_dim, width

    @staticmethod
    def example_input(batch: int) -> torch.Tensor:
        return example_tokens(batch, TextTransformer.EXAMPLE_IN_SHAPE[0], TextTransformer.EXAMPLE_CONTEXT["vocab_size"])

    def attended(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) bool: the tokens attention and pooling read (an all-padding row keeps its first slot, which
        would otherwise give attention nothing to attend to: NaN)."""
        attend = x != self.pad_id
        attend[:, 0] |= ~attend.any(1)
        return attend

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """One contextual state per token position: (B, T, W)."""
        return self.encoder(self.embed(x) + self.pos[:, : x.shape[1]], src_key_padding_mask=~self.attended(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hidden(x)  # (B, T, W)
        m = self.attended(x).unsqueeze(-1).float()
        return self.proj((h * m).sum(1) / m.sum(1))  # (B, D)
