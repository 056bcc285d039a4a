"""The composed model: per-input encoders -> fusion -> head, built from a recipe by registry lookups."""

from __future__ import annotations

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
    """

    def __init__(self, encoders: dict[str, nn.Module], fusion: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)
        self.fusion = fusion
        self.head = head

    def embed(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: enc(inputs[name]) for name, enc in self.encoders.items()}

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.fusion(self.embed(inputs)))  # (B, K)


def build_model(recipe: Recipe, in_shapes: dict[str, tuple[int, ...]], num_classes: int) -> MultimodalModel:
    """Build the recipe's model; ``in_shapes`` gives one example's tensor shape per input."""
    encoders = {s.name: ENCODERS.build(s.encoder.name, s.encoder.params, in_shape=tuple(in_shapes[s.name]))
                for s in recipe.inputs}
    fusion = FUSIONS.build(recipe.fusion.name, recipe.fusion.params,
                           in_dims={k: e.out_dim for k, e in encoders.items()}, num_outputs=num_classes)
    head = HEADS.build(recipe.head.name, recipe.head.params, in_dim=fusion.out_dim, num_classes=num_classes,
                       project=not fusion.emits_logits)
    return MultimodalModel(encoders, fusion, head)
