"""What the objectives share: encoders built from a recipe, and masks that are random in training but the
same at every evaluation (so validation losses of different epochs compare like with like)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from polymodal.errors import ConfigError
from polymodal.registry import ENCODERS


class MaskingObjective(nn.Module):
    """Base for objectives that draw random masks: training draws from torch's global RNG (seeded and
    checkpointed by the Trainer); evaluation redraws the same masks each time from a fixed seed."""

    EVAL_SEED = 1234

    def __init__(self) -> None:
        super().__init__()
        self._eval_generator: torch.Generator | None = None

    def train(self, mode: bool = True) -> MaskingObjective:
        super().train(mode)
        self._eval_generator = None if mode else torch.Generator().manual_seed(self.EVAL_SEED)
        return self

    def generator(self) -> torch.Generator | None:
        return None if self.training else self._eval_generator


def only_input(encoders: dict[str, nn.Module], objective: str) -> tuple[str, nn.Module]:
    """The single (name, encoder) of a one-input objective, which must expose per-token ``hidden`` states."""
    if len(encoders) != 1:
        raise ConfigError(f"objective {objective}: give exactly one input (got {', '.join(encoders)})")
    name, enc = next(iter(encoders.items()))
    if not hasattr(enc, "hidden"):
        raise ConfigError(
            f"objective {objective}: encoder of input '{name}' ({type(enc).__name__}) has no per-token states; "
            "use one of " + ", ".join(hidden_encoders())
        )
    return name, enc


def hidden_encoders() -> list[str]:
    """Registered encoders that expose ``hidden(x) -> (B, N, W)`` (the ones MLM/MAE can pretrain)."""
    return [n for n in ENCODERS.names() if hasattr(ENCODERS.get(n).factory, "hidden")]


def build_encoders(
    inputs: list[Any], in_shapes: dict[str, tuple[int, ...]], contexts: dict[str, dict[str, Any]]
) -> dict[str, nn.Module]:
    """One encoder per recipe input, built exactly as :func:`polymodal.model.build_model` builds it (same
    arguments, so the weights fit a downstream model with the same encoder settings)."""
    return {
        s.name: ENCODERS.build(
            s.encoder.name, s.encoder.params, in_shape=tuple(in_shapes[s.name]), **contexts.get(s.name, {})
        )
        for s in inputs
    }
