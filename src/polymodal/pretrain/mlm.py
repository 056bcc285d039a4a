"""Masked language modelling (BERT): hide 15 % of a text's tokens, predict them from the rest.

The text vocabularies here have no ``[MASK]`` entry, so ``[UNK]`` plays its part (``token_dropout`` already
uses it as "a word the model cannot read"); a vocabulary that has ``[MASK]`` (MiniLM's) uses that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from polymodal.data.modalities.text import SPECIALS, UNK
from polymodal.pretrain.base import MaskingObjective, only_input
from polymodal.registry import OBJECTIVES


@dataclass
class MLMConfig:
    """Recipe keys for ``objective: {name: mlm}``.

    Of the chosen tokens, ``random_fraction`` become a random token and ``keep_fraction`` stay as they are
    (BERT's 80/10/10), so the encoder cannot learn that only ``[MASK]`` positions matter.
    """

    mask_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.15
    random_fraction: Annotated[float, Field(ge=0, le=1)] = 0.1
    keep_fraction: Annotated[float, Field(ge=0, le=1)] = 0.1


def mask_tokens(
    x: torch.Tensor,
    pad_id: int,
    mask_id: int,
    vocab_size: int,
    fraction: float,
    random_fraction: float = 0.1,
    keep_fraction: float = 0.1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose round(fraction · n) of each row's n non-padding tokens (at least one) and corrupt them.

    Args:
        x: (B, T) token ids.

    Returns:
        corrupted (B, T) ids and chosen (B, T) bool — the positions to predict.
    """
    valid = x != pad_id
    n_valid = valid.sum(1)
    n_pick = torch.minimum((n_valid * fraction).round().clamp_min(1), n_valid)  # (B,)
    scores = torch.rand(x.shape, generator=generator).masked_fill(~valid, 2.0)  # padding sorts last
    rank = scores.argsort(1).argsort(1)
    chosen = rank < n_pick.unsqueeze(1)  # (B, T)
    action = torch.rand(x.shape, generator=generator)
    to_mask = chosen & (action < 1 - random_fraction - keep_fraction)
    to_random = chosen & (action >= 1 - random_fraction - keep_fraction) & (action < 1 - keep_fraction)
    random_ids = torch.randint(len(SPECIALS), max(vocab_size, len(SPECIALS) + 1), x.shape, generator=generator)
    corrupted = torch.where(to_random, random_ids, x.masked_fill(to_mask, mask_id))
    return corrupted, chosen


class MLMOutput(NamedTuple):
    logits: torch.Tensor  # (M, V) at the M chosen positions of the batch
    targets: torch.Tensor  # (M,) original ids
    rows: torch.Tensor  # (M,) batch row of each chosen position
    batch: int


@OBJECTIVES.register("mlm", MLMConfig)
class MaskedLanguageModel(MaskingObjective):
    """A text encoder's per-token states -> BERT's LM head (dense, GELU, LayerNorm, vocabulary logits).

    Args:
        encoders: ``{input: encoder}`` with one text encoder exposing ``hidden`` (text_transformer, text_bilstm).
        contexts: Per input, ``vocab_size`` and ``pad_id`` from its fitted tokenizer.
        transforms: Per input, its fitted transform (gives the ``[MASK]``/``[UNK]`` id).
        mask_fraction, random_fraction, keep_fraction: See :class:`MLMConfig`.
    """

    INPUTS = 1
    # The encoder's pooled projection (hidden states -> one vector) is not used here: MAE/MLM train the per-token
    # states, and a downstream model that starts from them trains the projection itself.
    UNTRAINED_ENCODER_PARTS = ("proj",)
    EXAMPLE_INPUTS: list[dict[str, Any]] = [
        {
            "name": "text",
            "modality": "text",
            "preprocessing": {"vocab_size": 300, "max_length": 16},
            "encoder": {"name": "text_transformer", "width": 16, "heads": 2, "layers": 1, "out_dim": 16},
        }
    ]

    def __init__(
        self,
        encoders: dict[str, nn.Module],
        in_shapes: dict[str, tuple[int, ...]],
        contexts: dict[str, dict[str, Any]],
        transforms: dict[str, Any],
        classes: list[str],
        mask_fraction: float,
        random_fraction: float,
        keep_fraction: float,
    ) -> None:
        super().__init__()
        self.name, enc = only_input(encoders, "mlm")
        ctx = contexts.get(self.name, {})
        if "vocab_size" not in ctx:
            raise ValueError(f"mlm: input '{self.name}' is not text (no vocabulary); use a text input")
        self.encoders = nn.ModuleDict(encoders)
        self.vocab_size, self.pad_id = int(ctx["vocab_size"]), int(ctx["pad_id"])
        lookup = getattr(transforms.get(self.name), "token_id", lambda token: None)
        self.mask_id = next((i for i in (lookup("[MASK]"), lookup("[UNK]")) if i is not None), UNK)
        self.fractions = (mask_fraction, random_fraction, keep_fraction)
        w = enc.hidden_dim
        self.head = nn.Sequential(nn.Linear(w, w), nn.GELU(), nn.LayerNorm(w), nn.Linear(w, self.vocab_size))

    def forward(self, inputs: dict[str, torch.Tensor], present: Any = None) -> MLMOutput:
        x = inputs[self.name]  # (B, T)
        frac, rnd, keep = self.fractions
        corrupted, chosen = mask_tokens(
            x, self.pad_id, self.mask_id, self.vocab_size, frac, rnd, keep, self.generator()
        )
        h = self.encoders[self.name].hidden(corrupted)  # (B, T, W)
        rows = torch.arange(len(x)).unsqueeze(1).expand_as(x)[chosen]
        return MLMOutput(self.head(h[chosen]), x[chosen], rows, len(x))

    def loss(self, out: MLMOutput, target: torch.Tensor) -> torch.Tensor:
        if not len(out.targets):  # a batch of empty texts: nothing to predict
            return out.logits.sum() * 0.0
        return F.cross_entropy(out.logits.float(), out.targets)

    def reduce(self, out: MLMOutput) -> torch.Tensor:
        """Per example (B, 2): correctly predicted masked tokens, masked tokens."""
        kept = torch.zeros(out.batch, 2)
        hit = (out.logits.argmax(-1) == out.targets).float()
        kept.index_add_(0, out.rows, torch.stack([hit, torch.ones_like(hit)], 1))
        return kept

    def metrics(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        correct, count = outputs.sum(0)
        return {"accuracy": float(correct / max(count, 1)), "masked_tokens": int(count), "n": len(outputs)}
