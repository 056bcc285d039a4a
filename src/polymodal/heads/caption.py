"""Caption head (ClipCap-style prefix generation): the fused vector becomes P prefix embeddings for a GPT
decoder, which writes the target text character by character.

Training is teacher-forced: ``loss(prefix, target)`` runs the decoder on [prefix; <bos>; text] and scores
each next character. Evaluation decodes greedily with the KV cache (``reduce``) and reports exact match as
``accuracy`` plus BLEU-4 (sacrebleu), ROUGE-L and CIDEr (pycocoevalcap's scorers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from polymodal.data.targets import BOS, EOS
from polymodal.gpt.model import GPT, GPTConfig, KVCache
from polymodal.registry import HEADS
from polymodal.schema import Heads, Layers, Width


@dataclass
class CaptionConfig:
    """Recipe keys for ``head: {name: caption}``."""

    prefix_length: Annotated[int, Field(ge=1, le=256)] = (
        4  # P tokens the decoder attends to at every step of every caption
    )
    projector: Literal["linear", "mlp"] = "mlp"
    # prefix: the P embeddings go before the text (ClipCap); cross: every decoder block reads them through
    # cross-attention instead (encoder-decoder style), and the text starts at position 0.
    conditioning: Literal["prefix", "cross"] = "prefix"
    n_layer: Layers = 2
    n_head: Heads = 4
    n_embd: Width = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


def caption_scores(hyps: list[str], refs: list[str]) -> dict[str, float]:
    """Exact match, BLEU-4 (sacrebleu, corpus level), ROUGE-L and CIDEr-D (pycocoevalcap) on 0–1 scales."""
    out = {"accuracy": float(np.mean([h == r for h, r in zip(hyps, refs, strict=True)]))}
    try:
        import sacrebleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge
    except ImportError:  # the caption extra is not installed: exact match only
        return out
    out["bleu4"] = sacrebleu.corpus_bleu(hyps, [refs]).score / 100
    gts = {i: [r.lower() or "-"] for i, r in enumerate(refs)}
    res = {i: [h.lower() or "-"] for i, h in enumerate(hyps)}
    out["rouge_l"] = float(Rouge().compute_score(gts, res)[0])
    out["cider"] = float(Cider().compute_score(gts, res)[0])
    return out


@HEADS.register("caption", CaptionConfig)
class CaptionHead(nn.Module):
    """(B, D) -> prefix (B, P, C) -> GPT decoder -> text.

    Args:
        in_dim: Width D of the fused vector.
        target: Target info (``{"kind": "text", "chars": [...], "max_length": L}``) from the data.
        prefix_length: Number P of prefix embeddings (or memory tokens with ``conditioning: cross``).
        projector: ``linear`` or ``mlp`` (hidden width (D + P·C) / 2, as in ClipCap's MLP mapper).
        conditioning: ``prefix`` or ``cross``.
        n_layer, n_head, n_embd: Decoder shape.
        dropout: Decoder and projector dropout.
        project: Must be True (a fusion that already emits class logits cannot feed a decoder).
    """

    TARGET = "text"
    EXAMPLE_TARGET: dict[str, Any] = {"kind": "text", "chars": list("abcde"), "max_length": 6}

    def __init__(
        self,
        in_dim: int,
        target: dict[str, Any],
        prefix_length: int,
        projector: str,
        conditioning: str,
        n_layer: int,
        n_head: int,
        n_embd: int,
        dropout: float,
        project: bool = True,
    ) -> None:
        super().__init__()
        if not project:
            raise ValueError("caption head: the fusion emits class logits (late/stacking); use a feature fusion")
        self.chars: list[str] = list(target["chars"])
        self.max_length, self.p, self.c = int(target["max_length"]), prefix_length, n_embd
        self.cross = conditioning == "cross"
        width = prefix_length * n_embd
        if projector == "linear":
            self.proj: nn.Module = nn.Linear(in_dim, width)
        else:
            hidden = (in_dim + width) // 2
            self.proj = nn.Sequential(
                nn.Linear(in_dim, hidden), nn.Tanh(), nn.Dropout(dropout), nn.Linear(hidden, width)
            )
        cfg = GPTConfig(
            vocab_size=len(self.chars) + 2,
            block_size=(0 if self.cross else prefix_length) + 1 + self.max_length,
            n_layer=n_layer,
            n_head=n_head,
            n_embd=n_embd,
            dropout=dropout,
            cross_attention=self.cross,
        )
        self.gpt = GPT(cfg)

    def condition(self, prefix: torch.Tensor) -> dict[str, torch.Tensor]:
        """How the projected embeddings reach the decoder: as prefix, or as cross-attention memory."""
        return {"memory": prefix} if self.cross else {"prefix": prefix}

    @staticmethod
    def example_target(batch: int) -> torch.Tensor:
        y = torch.full((batch, 6), -1)
        for b in range(batch):
            y[b, : b + 2] = torch.tensor([2 + (b + i) % 5 for i in range(b + 1)] + [EOS])
        return y

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.proj(h).view(h.shape[0], self.p, self.c)  # (B, P, C)

    def loss(self, prefix: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        bos = torch.full_like(target[:, :1], BOS)
        x = torch.cat([bos, target[:, :-1].clamp_min(0)], dim=1)  # padding positions are ignored by the loss
        logits = self.gpt(x, **self.condition(prefix))[0]  # (B, L, V)
        return F.cross_entropy(logits.float().flatten(0, 1), target.flatten(), ignore_index=-1)

    @torch.no_grad()
    def reduce(self, prefix: torch.Tensor) -> torch.Tensor:
        """Greedy decoding with the KV cache: ids (B, L) with -1 after the end token."""
        b = prefix.shape[0]
        cache = KVCache(self.gpt.cfg.block_size)
        cond = self.condition(prefix)
        logits = self.gpt(torch.full((b, 1), BOS, dtype=torch.long), cache=cache, **cond)[0][:, -1]
        out = torch.full((b, self.max_length), -1, dtype=torch.long)
        done = torch.zeros(b, dtype=torch.bool)
        for t in range(self.max_length):
            nxt = logits.argmax(-1)
            out[:, t] = torch.where(done, torch.full_like(nxt, -1), nxt)
            done |= nxt == EOS
            if bool(done.all()) or t == self.max_length - 1:
                break
            logits = self.gpt(nxt.unsqueeze(1), cache=cache, memory=cond.get("memory"))[0][:, -1]
        return out

    def text(self, ids: Any) -> str:
        chars = []
        for i in np.asarray(ids).tolist():
            if i in (EOS, -1):
                break
            if i >= 2:
                chars.append(self.chars[i - 2])
        return "".join(chars)

    def predict(self, prefix: torch.Tensor) -> torch.Tensor:
        return self.reduce(prefix)

    def metrics(self, ids: np.ndarray, target: np.ndarray) -> dict[str, Any]:
        hyps = [self.text(r) for r in ids]
        refs = [self.text(r) for r in target]
        spread = list(range(0, len(refs), max(1, len(refs) // 5)))[:5]  # evenly spaced, not the first five
        examples = [(refs[i], hyps[i]) for i in spread]
        return {**caption_scores(hyps, refs), "n": len(refs), "examples": examples}

    def describe(self, prefix: torch.Tensor) -> dict[str, Any]:
        """One example's prefix (P, C) -> ``{"text": generated}``."""
        return {"text": self.text(self.reduce(prefix.unsqueeze(0))[0])}
