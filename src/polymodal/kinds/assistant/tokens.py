"""The conversation format: a text tokenizer's ids plus special tokens for turns and attached inputs.

One turn is ``<user> [<image>×K] [<audio>×K] question <assistant> answer <end>``: the K positions of an
attached input are where the model splices that input's projected embeddings. The loss is on the answer
and its ``<end>`` only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from polymodal.errors import DataError

SPECIAL = re.compile(r"<[^<>\s]{1,40}>")  # anything shaped like a special token, in text a user typed
TURN_TOKENS = ("<user>", "<assistant>", "<end>")


@dataclass
class Turn:
    """One question (with the inputs attached in this turn, by name) and, once answered, its answer."""

    question: str
    attached: tuple[str, ...] = ()
    answer: str | None = None


class ChatFormat:
    """Encodes conversations for a model whose inputs are ``inputs``, each spliced as ``k`` positions.

    Args:
        base: A fitted text tokenizer (char or BPE, :mod:`polymodal.gpt.tokenizer`).
        inputs: The run's input names; ``<name>`` is each one's placeholder.
        k: Positions per attached input.
    """

    def __init__(self, base: Any, inputs: Sequence[str], k: int) -> None:
        self.base, self.inputs, self.k = base, list(inputs), k
        n = base.vocab_size
        self.specials = [*TURN_TOKENS, *(f"<{name}>" for name in self.inputs)]
        self.id = {s: n + i for i, s in enumerate(self.specials)}
        self.user, self.assistant, self.end = (self.id[s] for s in TURN_TOKENS)
        self.vocab_size = n + len(self.specials)

    def placeholder(self, name: str) -> int:
        return self.id[f"<{name}>"]

    def text(self, text: str) -> list[int]:
        """Ids of text a person wrote; a special token typed in it is refused (attachments have commands)."""
        found = SPECIAL.search(text)
        if found:
            token = found.group()
            hint = (
                f"attach a file for it instead (/{token[1:-1]} PATH in chat, the '{token[1:-1]}' field over HTTP)"
                if token[1:-1] in self.inputs
                else "special tokens cannot be typed"
            )
            raise DataError(f"the message contains '{token}', which is a special token of this model; {hint}")
        return self.base.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.base.decode([i for i in ids if i < self.base.vocab_size])

    def encode(self, turns: Sequence[Turn]) -> tuple[list[int], list[bool]]:
        """The conversation's ids and which of them are scored (answer tokens and their ``<end>``). A last turn
        without an answer ends with ``<assistant>``: the prompt the model answers."""
        ids: list[int] = []
        scored: list[bool] = []
        for turn in turns:
            unknown = [a for a in turn.attached if a not in self.inputs]
            if unknown:
                raise DataError(f"this model takes {', '.join(self.inputs)}; it has no input '{unknown[0]}'")
            head = [self.user]
            for name in turn.attached:
                head += [self.placeholder(name)] * self.k
            head += [*self.text(turn.question), self.assistant]
            ids += head
            scored += [False] * len(head)
            if turn.answer is not None:
                tail = [*self.base.encode(turn.answer), self.end]
                ids += tail
                scored += [True] * len(tail)
        return ids, scored

    def example(self, turns: Sequence[Turn], block: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (block,) and next-token targets (block,), -1 where unscored; padded with ``<end>``."""
        ids, scored = self.encode(turns)
        if len(ids) > block + 1:
            raise DataError(f"a conversation of {len(ids)} tokens does not fit model.block_size {block}; raise it")
        x = torch.full((block,), self.end, dtype=torch.long)
        y = torch.full((block,), -1, dtype=torch.long)
        x[: len(ids) - 1] = torch.tensor(ids[:-1])
        y[: len(ids) - 1] = torch.tensor([t if s else -1 for t, s in zip(ids[1:], scored[1:], strict=True)])
        return x, y

    def state_dict(self) -> dict[str, Any]:
        return {"base": self.base.state_dict(), "inputs": self.inputs, "k": self.k}
