"""The shapes every component and trainable model has (``typing.Protocol``), and the typed output of a forward.

Letters in shapes: B batch, T time/tokens, D width, K outputs. tests/test_contracts.py checks every registered
component against these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch


@dataclass
class ModelOutput:
    """What a trainable model's forward returns: what its head emitted, plus what its loss needs besides.

    Attributes:
        logits: The head's output: (B, K) scores for most heads, (B, T, V) for a language model, decoder
            prefixes for a caption head, or an objective's own tensor.
        present: ``{input: (B,) bool}`` flags the forward used (after modality dropout); None = all present.
        aux: ``{input: (B, K)}`` per-modality logits of fusions that train one classifier per input (late,
            stacking); their loss is added in training.
        extra: Anything else an objective's loss reads (e.g. the masks of masked modelling).
    """

    logits: torch.Tensor
    present: dict[str, torch.Tensor] | None = None
    aux: dict[str, torch.Tensor] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Encoder(Protocol):
    """``forward(x) -> (B, D)`` or ``(B, T, D)`` tokens; ``out_dim`` is D."""

    out_dim: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Fusion(Protocol):
    """``forward(embeddings, present=None) -> (B, out_dim)``: reads ``embeddings`` in sorted key order; a missing
    input arrives as a zero embedding with flag False. ``emits_logits``: the output already scores the classes.
    A fusion that trains one classifier per input also has ``forward_with_aux -> (output, {input: logits})``."""

    out_dim: int
    emits_logits: bool

    def __call__(
        self, embeddings: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor: ...


@runtime_checkable
class Head(Protocol):
    """``forward(h) -> logits``, ``loss(logits, target)``, ``metrics(outputs, targets)`` over a whole split, and
    ``describe(logits_row)``: one prediction as JSON-able data. ``TARGET`` names the target form it trains on."""

    TARGET: ClassVar[str]

    def __call__(self, h: torch.Tensor) -> torch.Tensor: ...

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor: ...

    def metrics(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, Any]: ...

    def describe(self, logits: torch.Tensor) -> dict[str, Any]: ...


@runtime_checkable
class Trainable(Protocol):
    """What the Trainer's supervised step and the Evaluator call: a multimodal model, a pretraining objective, a
    language model.

    ``forward(inputs, present) -> ModelOutput``; ``loss(out, target)`` a scalar; ``reduce(out)`` what evaluation
    keeps of a batch's output (e.g. logits, or decoded text); ``metrics(kept, targets)`` over a whole split.
    """

    def __call__(self, inputs: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None) -> ModelOutput: ...

    def loss(self, out: ModelOutput, target: torch.Tensor) -> torch.Tensor: ...

    def reduce(self, out: ModelOutput) -> torch.Tensor: ...

    def metrics(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, Any]: ...
