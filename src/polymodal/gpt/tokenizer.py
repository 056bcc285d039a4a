"""Tokenizers for the GPT: characters, or byte-level BPE trained with the ``tokenizers`` library.

Both are fitted on the training text and saved with the run as JSON (``state_dict``), so a finished run
decodes exactly as it was trained.
"""

from __future__ import annotations

from typing import Any

from polymodal.errors import DataError


class CharTokenizer:
    """One id per distinct character of the training text (sorted), as in nanoGPT's shakespeare_char."""

    kind = "char"

    def __init__(self, chars: list[str] | None = None) -> None:
        self.chars = chars or []
        self.index = {c: i for i, c in enumerate(self.chars)}

    def fit(self, text: str) -> CharTokenizer:
        self.__init__(sorted(set(text)))  # type: ignore[misc]
        return self

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        unknown = sorted({c for c in text if c not in self.index})
        if unknown:
            shown = "".join(unknown[:10])
            raise DataError(f"characters {shown!r} are not in this model's vocabulary (trained on other text)")
        return [self.index[c] for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "chars": self.chars}


class BPETokenizer:
    """Byte-level BPE (GPT-2 style: any text encodes, no unknown tokens) with ``vocab_size`` ids."""

    kind = "bpe"

    def __init__(self, vocab_size: int = 1024, serialized: str | None = None) -> None:
        from tokenizers import Tokenizer

        self.target_size = vocab_size
        self.tok = Tokenizer.from_str(serialized) if serialized else None

    def fit(self, text: str) -> BPETokenizer:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=self.target_size,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        chunks = text.splitlines(keepends=True)
        tok.train_from_iterator(chunks, trainer)
        self.tok = tok
        return self

    @property
    def vocab_size(self) -> int:
        assert self.tok is not None
        return self.tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        assert self.tok is not None, "fit the tokenizer first"
        return self.tok.encode(text).ids

    def decode(self, ids: list[int]) -> str:
        assert self.tok is not None
        return self.tok.decode(ids)

    def state_dict(self) -> dict[str, Any]:
        assert self.tok is not None
        return {"kind": self.kind, "vocab_size": self.target_size, "tokenizer": self.tok.to_str()}


def build_tokenizer(kind: str, vocab_size: int = 1024) -> CharTokenizer | BPETokenizer:
    return CharTokenizer() if kind == "char" else BPETokenizer(vocab_size)


def load_tokenizer(state: dict[str, Any]) -> CharTokenizer | BPETokenizer:
    if state["kind"] == "char":
        return CharTokenizer(state["chars"])
    return BPETokenizer(state.get("vocab_size", 1024), state["tokenizer"])
