"""A :class:`~polymodal.gpt.model.GPT` behind the Trainer's interface (the Trainable contract)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from polymodal.contracts import ModelOutput
from polymodal.gpt.model import GPT


class LanguageModel(nn.Module):
    """A :class:`GPT` behind the Trainer's interface: ``forward(inputs, present)``, ``loss``, ``reduce``,
    ``metrics`` (token accuracy; the loss is the cross-entropy in nats per token)."""

    def __init__(self, gpt: GPT) -> None:
        super().__init__()
        self.gpt = gpt

    def forward(self, inputs: dict[str, torch.Tensor], present: Any = None) -> ModelOutput:
        return ModelOutput(self.gpt(inputs["tokens"])[0])  # logits (B, T, V)

    def loss(self, out: ModelOutput, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.logits.float().flatten(0, 1), target.flatten(), ignore_index=-1)

    def reduce(self, out: ModelOutput) -> torch.Tensor:
        return out.logits.argmax(-1)  # (B, T): keeping (B, T, V) for a whole split would not fit a large vocab

    def metrics(self, predictions: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        return {"accuracy": float((predictions == targets).mean()), "n": int(targets.size)}
