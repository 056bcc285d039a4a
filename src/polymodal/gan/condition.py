"""What a conditional GAN is conditioned on, and how the networks embed it.

Two kinds of condition, one tensor each per example:

- ``label``: a class index, ``c`` of shape (B,) long, embedded by a learned table (as in the cGAN of
  Mirza & Osindero 2014 and the projection critic of Miyato & Koyama 2018);
- ``text``: a bag of words, ``c`` of shape (B, V) float — the L2-normalised word counts of the caption over a
  vocabulary fitted on the training captions — embedded by a learned linear map, i.e. a learned word
  embedding averaged over the caption (a fastText-style bag of words).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from polymodal.errors import DataError

WORD = re.compile(r"[^\W\d_]{2,}")  # words of two or more letters; digits and punctuation carry little here


def words(text: str) -> list[str]:
    return WORD.findall(str(text).lower())


class BagOfWords:
    """Caption -> (V,) L2-normalised word counts over the ``vocab_size`` most frequent training words.

    Args:
        vocab_size: Words kept at most (the most frequent ones seen at least ``min_count`` times).
        min_count: Fewer occurrences than this in the training captions and a word is ignored.
    """

    def __init__(self, vocab_size: int = 1000, min_count: int = 2) -> None:
        self.vocab_size, self.min_count = vocab_size, min_count
        self.index: dict[str, int] = {}

    def fit(self, texts: Iterable[str]) -> BagOfWords:
        counts = Counter(w for t in texts for w in words(t))
        kept = [w for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= self.min_count]
        if not kept:
            raise DataError("no caption word occurs twice in the training split; use longer captions or more rows")
        self.index = {w: i for i, w in enumerate(kept[: self.vocab_size])}
        return self

    @property
    def dim(self) -> int:
        return len(self.index)

    def known(self, text: str) -> list[str]:
        return [w for w in words(text) if w in self.index]

    def encode(self, texts: Iterable[str]) -> torch.Tensor:
        """(N, V) float; a caption without a known word is a zero vector (the unconditional direction)."""
        texts = list(texts)
        out = torch.zeros(len(texts), self.dim)
        for row, text in enumerate(texts):
            for w in self.known(text):
                out[row, self.index[w]] += 1.0
        return out / out.norm(dim=1, keepdim=True).clamp_min(1e-8)

    def state_dict(self) -> dict[str, Any]:
        return {"vocab_size": self.vocab_size, "min_count": self.min_count, "words": list(self.index)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BagOfWords:
        bow = cls(state["vocab_size"], state["min_count"])
        bow.index = {w: i for i, w in enumerate(state["words"])}
        return bow


class ConditionEmbedding(nn.Module):
    """Condition -> (B, D): a learned table for class indices (B,), a linear map for word bags (B, V).

    Args:
        cond_kind: ``label`` or ``text``.
        cond_dim: Number of classes (label) or vocabulary size V (text).
        out_dim: Embedding width D.
    """

    def __init__(self, cond_kind: str, cond_dim: int, out_dim: int) -> None:
        super().__init__()
        self.cond_kind = cond_kind
        if cond_kind == "label":
            self.embed: nn.Module = nn.Embedding(cond_dim, out_dim)
        elif cond_kind == "text":
            self.embed = nn.Linear(cond_dim, out_dim, bias=False)
        else:
            raise ValueError(f"cond_kind must be label or text, got {cond_kind!r}")

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return self.embed(c)  # (B, D)


def example_condition(cond_kind: str, cond_dim: int, batch: int) -> torch.Tensor:
    """A valid condition batch for contract tests: class indices (B,) or normalised word bags (B, V)."""
    g = torch.Generator().manual_seed(0)
    if cond_kind == "label":
        return torch.randint(cond_dim, (batch,), generator=g)
    bags = (torch.rand(batch, cond_dim, generator=g) < 0.2).float()
    return bags / bags.norm(dim=1, keepdim=True).clamp_min(1e-8)
