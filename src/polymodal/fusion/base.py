"""Helpers every fusion shares: pooling token sequences and turning presence flags into weights."""

from __future__ import annotations

import torch
from torch import nn


def pooled(e: torch.Tensor) -> torch.Tensor:
    """(B, D) stays; (B, T, D) tokens are mean-pooled over T."""
    return e if e.ndim == 2 else e.mean(dim=1)


def as_tokens(e: torch.Tensor) -> torch.Tensor:
    """(B, T, D) stays; a (B, D) vector becomes one token (B, 1, D)."""
    return e if e.ndim == 3 else e.unsqueeze(1)


def presence(keys: list[str], present: dict[str, torch.Tensor] | None, like: torch.Tensor) -> torch.Tensor:
    """(B, M) float 1/0 flags in ``keys`` order; all ones when ``present`` is None (nothing missing)."""
    b = like.shape[0]
    if present is None:
        return torch.ones(b, len(keys), dtype=like.dtype, device=like.device)
    return torch.stack([present[k].to(like.dtype) for k in keys], dim=1)


def masked_mean(z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Mean of (B, M, D) over the modalities whose (B, M) weight is 1; a row with none present gives 0."""
    return (z * w.unsqueeze(-1)).sum(1) / w.sum(1, keepdim=True).clamp_min(1.0)


def masked_softmax(logits: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Softmax of (B, M) scores over present modalities only (missing ones get weight 0)."""
    scores = logits.masked_fill(w == 0, torch.finfo(logits.dtype).min)
    return scores.softmax(dim=1) * (w.sum(1, keepdim=True) > 0).to(logits.dtype)


def linear_per_modality(in_dims: dict[str, int], width: int) -> nn.ModuleDict:
    """One ``Linear(D_m, width)`` per modality, keyed by name (projections, adapters, per-modality classifiers)."""
    return nn.ModuleDict({k: nn.Linear(d, width) for k, d in sorted(in_dims.items())})
