"""The composed model: per-input encoders -> fusion -> head, built from a recipe by registry lookups."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from polymodal.config import Recipe
from polymodal.contracts import ModelOutput
from polymodal.data.targets import num_outputs
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

    def forward(self, inputs: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None) -> ModelOutput:
        """The head's logits (B, K), the presence flags used, and the per-input logits of fusions that train one
        classifier per input. ``present``: optional ``{input: (B,) bool}``; a False input is treated as missing."""
        embeddings = self.embed(inputs)
        if self.training and self.modality_dropout > 0 and len(embeddings) > 1:
            b = next(iter(embeddings.values())).shape[0]
            if present is None:
                present = {k: torch.ones(b, dtype=torch.bool) for k in embeddings}
            present = drop_modalities(present, self.modality_dropout)
        if present is not None:
            # A missing input's encoder saw a placeholder; zero its embedding so it carries nothing. `where`, not a
            # product: a placeholder can drive an encoder to inf (a masked max over no valid step), and 0·inf = NaN.
            embeddings = {
                k: torch.where(present[k].view(-1, *([1] * (e.ndim - 1))), e, torch.zeros((), dtype=e.dtype))
                for k, e in embeddings.items()
            }
        if hasattr(self.fusion, "forward_with_aux"):
            fused, aux = self.fusion.forward_with_aux(embeddings, present)
        else:
            fused, aux = self.fusion(embeddings, present), {}
        return ModelOutput(self.head(fused), present, aux)

    def loss(self, out: ModelOutput, target: torch.Tensor) -> torch.Tensor:
        """The head's loss, plus (in training) the per-modality losses of fusions that keep unimodal
        classifiers (late, stacking), each over the samples where that modality was present."""
        loss = self.head.loss(out.logits, target)
        weight = getattr(self.fusion, "unimodal_loss", 0.0)
        if not (self.training and weight and out.aux):
            return loss
        extra = []
        for k, lg in out.aux.items():
            rows = out.present[k] if out.present is not None else slice(None)
            if lg[rows].shape[0]:
                extra.append(self.head.loss(lg[rows], target[rows]))
        return loss + weight * torch.stack(extra).mean() if extra else loss

    def reduce(self, out: ModelOutput) -> torch.Tensor:
        """What evaluation keeps of a batch's output: the logits as float32, or what the head keeps (a caption
        head decodes its text here)."""
        if hasattr(self.head, "reduce"):
            return self.head.reduce(out.logits)
        return out.logits.float()

    def metrics(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        """The head's metrics over a whole split."""
        return self.head.metrics(outputs, targets)


def drop_modalities(present: dict[str, torch.Tensor], p: float) -> dict[str, torch.Tensor]:
    """Mark one randomly chosen input missing in a fraction ``p`` of the samples, only where at least two
    inputs are present (so no sample loses every input). ``present``: ``{input: (B,) bool}``."""
    names = sorted(present)
    flags = torch.stack([present[k] for k in names], dim=1)  # (B, M)
    b = flags.shape[0]
    victim = torch.randint(len(names), (b,))
    hit = (torch.rand(b) < p) & (flags.sum(1) >= 2)
    # A comparison, not one_hot: one_hot reads the values (.item()), which torch.func.vmap (DP-SGD) cannot.
    drop = (victim.unsqueeze(1) == torch.arange(len(names))) & hit.unsqueeze(1)
    kept = flags & ~drop
    return {k: kept[:, i] for i, k in enumerate(names)}


def build_model(
    recipe: Recipe,
    in_shapes: dict[str, tuple[int, ...]],
    target: dict[str, Any],
    contexts: dict[str, dict[str, Any]] | None = None,
) -> MultimodalModel:
    """Build the recipe's model.

    Args:
        recipe: The validated recipe.
        in_shapes: One example's tensor shape per input.
        target: Target info from the data (classes, or tasks), see :mod:`polymodal.data.targets`.
        contexts: Per input, extra encoder arguments from its fitted transform (``Transform.context()``).
    """
    contexts = contexts or {}
    encoders = {}
    for s in recipe.inputs:
        params = s.encoder.params
        if getattr(FUSIONS.get(recipe.fusion.name).factory, "TOKENS", False) and hasattr(params, "tokens"):
            params = dataclasses.replace(params, tokens=True)  # attention fusions read token sequences
        encoders[s.name] = ENCODERS.build(
            s.encoder.name, params, in_shape=tuple(in_shapes[s.name]), **contexts.get(s.name, {})
        )
    fusion = FUSIONS.build(
        recipe.fusion.name,
        recipe.fusion.params,
        in_dims={k: e.out_dim for k, e in encoders.items()},
        num_outputs=num_outputs(target),
    )
    head = HEADS.build(
        recipe.head.name,
        recipe.head.params,
        in_dim=fusion.out_dim,
        target=target,
        project=not fusion.emits_logits,
    )
    return MultimodalModel(encoders, fusion, head, recipe.modality_dropout)
