"""The assistant: per-input encoders -> projector -> K embeddings per input, spliced into the GPT's token
embeddings where the prompt holds that input's placeholder; greedy answers with the KV cache.

Shapes: B batch, T tokens, D encoder width, K positions per input, C decoder width, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from polymodal.contracts import ModelOutput
from polymodal.gpt.model import GPT, KVCache


def projector(kind: str, d: int, k: int, c: int, dropout: float) -> nn.Module:
    """(B, D) -> (B, K·C): linear, or ClipCap's MLP mapper (hidden width (D + K·C) / 2)."""
    if kind == "linear":
        return nn.Linear(d, k * c)
    hidden = (d + k * c) // 2
    return nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, k * c))


class AssistantModel(nn.Module):
    """Answers questions about its inputs.

    Args:
        encoders: ``{input: encoder}`` (each ``(B, ...) -> (B, D)``, attribute ``out_dim``).
        gpt: The decoder; its vocabulary includes the placeholder ids.
        placeholders: ``{input: token id}`` of each input's ``<name>``.
        k: Positions per input.
        projector_kind: ``linear`` or ``mlp``.
        end: The id that ends an answer.
    """

    def __init__(
        self,
        encoders: dict[str, nn.Module],
        gpt: GPT,
        placeholders: dict[str, int],
        k: int,
        projector_kind: str = "mlp",
        end: int = 0,
    ) -> None:
        super().__init__()
        c = gpt.cfg.n_embd
        self.encoders = nn.ModuleDict(encoders)
        self.proj = nn.ModuleDict(
            {n: projector(projector_kind, e.out_dim, k, c, gpt.cfg.dropout) for n, e in encoders.items()}
        )
        self.gpt, self.placeholders, self.k, self.end = gpt, placeholders, k, end
        self.frozen = False

    def freeze_encoders(self, frozen: bool = True) -> None:
        """Keep the encoders as they are (no gradient, batch-norm statistics fixed: always in eval mode)."""
        self.frozen = frozen
        for p in self.encoders.parameters():
            p.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> AssistantModel:
        super().train(mode)
        if self.frozen:
            self.encoders.eval()
        return self

    def embed(
        self, tokens: torch.Tensor, inputs: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None
    ) -> torch.Tensor:
        """Token embeddings (B, T, C) with each input's K projected embeddings at its placeholder positions
        (zeros where the input is missing). Every row that holds a placeholder holds exactly K of it."""
        x = self.gpt.wte(tokens)  # (B, T, C)
        for name, enc in self.encoders.items():
            at = tokens == self.placeholders[name]  # (B, T)
            rows = at.any(1)
            if not bool(rows.any()):
                continue
            z = self.proj[name](enc(inputs[name][rows])).view(-1, self.k, x.shape[-1])  # (B', K, C)
            if present is not None:
                keep = present[name][rows].view(-1, 1, 1)
                z = torch.where(keep, z, torch.zeros((), dtype=z.dtype))
            x = x.masked_scatter(at.unsqueeze(-1), z.to(x.dtype))
        return x

    def forward(self, inputs: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None) -> ModelOutput:
        """Logits (B, T', V) for the first T' positions: sequences come padded to block_size with ``end``, and
        the columns after the longest one are cut (the mean conversation is well under half the block)."""
        tokens = inputs["tokens"]
        real = (tokens != self.end).flip(1).int().argmax(1)  # trailing padding per row (an x never ends in end)
        cut = tokens.shape[1] - int(real.min()) if bool((tokens != self.end).any()) else 1
        tokens = tokens[:, :cut]
        logits = self.gpt(tokens, embeds=self.embed(tokens, inputs, present))[0]  # (B, T', V)
        return ModelOutput(logits, extra={"length": inputs["tokens"].shape[1]})

    def loss(self, out: ModelOutput, target: torch.Tensor) -> torch.Tensor:
        t = out.logits.shape[1]  # targets past the cut are all -1 (padding is never scored)
        return F.cross_entropy(out.logits.float().flatten(0, 1), target[:, :t].flatten(), ignore_index=-1)

    def reduce(self, out: ModelOutput) -> torch.Tensor:
        ids = out.logits.argmax(-1)  # (B, T')
        return F.pad(ids, (0, out.extra["length"] - ids.shape[1]), value=-1)  # (B, T): batches concatenate

    @staticmethod
    def exact(predictions: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Per row: every scored token predicted. Teacher-forced argmax equals greedy decoding exactly when all
        of a row's answer tokens are right (each step then sees the same context), so this is greedy exact
        match (up to float near-ties between two tokens, which the batched pass and cached decoding may round
        differently)."""
        return ((predictions == targets) | (targets == -1)).all(axis=1)

    def metrics(self, predictions: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        scored = targets != -1
        return {
            "accuracy": float(self.exact(predictions, targets).mean()),
            "token_accuracy": float((predictions == targets)[scored].mean()) if scored.any() else 0.0,
            "n": int(len(targets)),
        }

    @torch.no_grad()
    def stream(
        self,
        tokens: torch.Tensor,
        inputs: dict[str, torch.Tensor],
        present: dict[str, torch.Tensor] | None,
        max_new: int,
    ) -> Iterator[torch.Tensor]:
        """Greedy answer ids for prompts (B, T) of one length, one (B,) step at a time, with the KV cache; stops
        when every row has ended or the context is full (rows that ended keep yielding ``end``)."""
        self.eval()
        room = self.gpt.cfg.block_size - tokens.shape[1]
        cache = KVCache(self.gpt.cfg.block_size)
        logits = self.gpt(tokens, embeds=self.embed(tokens, inputs, present), cache=cache)[0][:, -1]
        done = torch.zeros(tokens.shape[0], dtype=torch.bool)
        for t in range(min(max_new, room + 1)):
            nxt = torch.where(done, torch.full_like(done, self.end, dtype=torch.long), logits.argmax(-1))
            yield nxt
            done |= nxt == self.end
            if bool(done.all()) or t == min(max_new, room + 1) - 1:
                return
            logits = self.gpt(nxt.unsqueeze(1), cache=cache)[0][:, -1]
