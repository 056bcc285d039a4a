"""An MLP over tabular features: embeddings for categorical columns, concatenated with the numbers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.registry import ENCODERS
from polymodal.schema import Width


@dataclass
class TabularMLPConfig:
    """Recipe keys for ``encoder: {name: tabular_mlp}``."""

    embed_dim: Width = 8
    hidden: Width = 64
    out_dim: Width = 64
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


@ENCODERS.register("tabular_mlp", TabularMLPConfig)
class TabularMLP(nn.Module):
    """(B, N_num + N_cat) -> (B, out_dim); category index 0 (unseen/missing) has its own embedding.

    Args:
        in_shape: One example's shape (N_num + N_cat,).
        num_numeric: Number of leading numeric features; cardinalities: per categorical column, #categories + 1.
        embed_dim: Embedding width per categorical column; hidden: MLP width.
        out_dim: Embedding width D; dropout: between layers.
    """

    EXAMPLE_IN_SHAPE = (5,)
    EXAMPLE_CONTEXT = {"num_numeric": 3, "cardinalities": [4, 3]}

    def __init__(
        self,
        in_shape: tuple[int, ...],
        num_numeric: int,
        cardinalities: list[int],
        embed_dim: int,
        hidden: int,
        out_dim: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.num_numeric = num_numeric
        self.embeds = nn.ModuleList(nn.Embedding(n, embed_dim) for n in cardinalities)
        width = num_numeric + embed_dim * len(cardinalities)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim), nn.ReLU()
        )
        self.out_dim = out_dim

    @staticmethod
    def example_input(batch: int) -> torch.Tensor:
        nums = torch.randn(batch, 3)
        cats = torch.stack([torch.randint(0, 4, (batch,)), torch.randint(0, 3, (batch,))], dim=1).float()
        return torch.cat([nums, cats], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nums, cats = x[:, : self.num_numeric], x[:, self.num_numeric :].long()  # (B, N_num), (B, N_cat)
        parts = [nums] + [emb(cats[:, i]) for i, emb in enumerate(self.embeds)]
        return self.mlp(torch.cat(parts, dim=1))  # (B, D)
