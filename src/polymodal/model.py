"""The composed model: per-input encoders -> fusion -> head, built from a recipe by registry lookups."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from polymodal.config import Recipe
from polymodal.registry import ENCODERS, FUSIONS, HEADS


class MultimodalModel(nn.Module):
    """``encoders[name](x[name])`` for each input, fused, then the head.

    Args:
        encoders: ``{input name: encoder}``; each has ``out_dim``.
        fusion: Module mapping ``{name: (B, D)}`` to (B, D_f).
        head: Module mapping (B, D_f) to logits, with ``loss``.
        modality_dropout: Training-time probability that a sample loses one (random) input's embedding.
            Joint training otherwise lets the modality that is learnt fastest drive the loss to zero, and
            the other encoders stop receiving gradient; dropping inputs keeps each one predictive alone.
    """

    def __init__(
        self, encoders: dict[str, nn.Module], fusion: nn.Module, head: nn.Module, modality_dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)
        self.fusion = fusion
        self.head = head
        self.modality_dropout = modality_dropout

    def embed(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: enc(inputs[name]) for name, enc in self.encoders.items()}

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        embeddings = self.embed(inputs)
        if self.training and self.modality_dropout > 0 and len(embeddings) > 1:
            embeddings = drop_modalities(embeddings, self.modality_dropout)
        return self.head(self.fusion(embeddings))  # (B, K)


def drop_modalities(embeddings: dict[str, torch.Tensor], p: float) -> dict[str, torch.Tensor]:
    """Zero one randomly chosen input's embedding in a fraction ``p`` of the samples (never all inputs)."""
    names = sorted(embeddings)
    b = next(iter(embeddings.values())).shape[0]
    victim = torch.randint(len(names), (b,))
    hit = torch.rand(b) < p  # (B,)
    out = {}
    for i, name in enumerate(names):
        keep = ~(hit & (victim == i))
        e = embeddings[name]
        out[name] = e * keep.view(-1, *([1] * (e.ndim - 1))).to(e.dtype)
    return out


def build_model(
    recipe: Recipe,
    in_shapes: dict[str, tuple[int, ...]],
    num_classes: int,
    contexts: dict[str, dict[str, Any]] | None = None,
) -> MultimodalModel:
    """Build the recipe's model.

    Args:
        recipe: The validated recipe.
        in_shapes: One example's tensor shape per input.
        num_classes: Number of classes K.
        contexts: Per input, extra encoder arguments from its fitted transform (``Transform.context()``).
    """
    contexts = contexts or {}
    encoders = {
        s.name: ENCODERS.build(
            s.encoder.name, s.encoder.params, in_shape=tuple(in_shapes[s.name]), **contexts.get(s.name, {})
        )
        for s in recipe.inputs
    }
    fusion = FUSIONS.build(
        recipe.fusion.name,
        recipe.fusion.params,
        in_dims={k: e.out_dim for k, e in encoders.items()},
        num_outputs=num_classes,
    )
    head = HEADS.build(
        recipe.head.name,
        recipe.head.params,
        in_dim=fusion.out_dim,
        num_classes=num_classes,
        project=not fusion.emits_logits,
    )
    return MultimodalModel(encoders, fusion, head, recipe.modality_dropout)
