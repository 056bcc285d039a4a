"""A finished assistant run, and a conversation with it (what ``polymodal chat`` and ``POST /chat`` use)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from polymodal.errors import CheckpointError, DataError
from polymodal.gpt.model import GPTConfig
from polymodal.gpt.tokenizer import load_tokenizer
from polymodal.kinds.assistant.build import build_assistant
from polymodal.kinds.assistant.model import AssistantModel
from polymodal.kinds.assistant.recipe import AssistantRecipe, parse_assistant_recipe
from polymodal.kinds.assistant.tokens import ChatFormat, Turn
from polymodal.registry import MODALITIES
from polymodal.runs import RunDir
from polymodal.schema import read_recipe_yaml
from polymodal.storage import load_weights

META: dict[str, type | tuple[type, ...]] = {"model": dict, "in_shapes": dict, "contexts": dict}


class AssistantRun:
    """``AssistantRun(run_dir)``: ``.model``, ``.fmt`` (tokens), ``.transforms``, ``.modalities``; :meth:`chat`.

    Args:
        run_dir: A finished ``kind: assistant`` run directory.
    """

    def __init__(self, run_dir: str | Path | RunDir) -> None:
        self.rundir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
        self.rundir.require("recipe.yaml", "meta.json", "tokenizer.json", "transforms.json", "weights.safetensors")
        self.meta = self.rundir.fields(META)
        raw, where = read_recipe_yaml(self.rundir.recipe_file)
        self.recipe: AssistantRecipe = parse_assistant_recipe(raw, where)
        state = self.rundir.read_json("tokenizer.json")
        if not isinstance(state, dict) or "base" not in state:
            raise CheckpointError(f"{self.rundir / 'tokenizer.json'} is not an assistant's tokenizer; retrain")
        self.fmt = ChatFormat(load_tokenizer(state["base"]), state["inputs"], int(state["k"]))
        self.modalities = {s.name: s.modality for s in self.recipe.inputs}
        self.transforms = {s.name: MODALITIES.build(s.modality, s.preprocessing) for s in self.recipe.inputs}
        states = self.rundir.read_json("transforms.json")
        for name, t in self.transforms.items():
            t.load_state_dict(states.get(name, {}))
        cfg = GPTConfig(**self.meta["model"])
        self.model: AssistantModel = build_assistant(
            self.recipe, self.fmt, self.meta["in_shapes"], self.meta["contexts"], cfg
        )
        load_weights(self.model, self.rundir.weights)
        self.model.eval()

    @property
    def block_size(self) -> int:
        return self.model.gpt.cfg.block_size

    def attachment(self, name: str, value: Any) -> torch.Tensor:
        """One attached input (a file path, bytes-decoded image, array...) as its tensor, by the run's transform."""
        if name not in self.transforms:
            took = ", ".join(f"{n} ({m})" for n, m in self.modalities.items())
            raise DataError(f"this model takes {took}; it has no input '{name}'")
        try:
            x = self.transforms[name](value)
        except DataError as exc:
            modality = self.modalities[name]
            article = "an" if modality[0] in "aeiou" else "a"
            raise DataError(f"{name}: {exc} (is it {article} {modality} file?)") from None
        expected = tuple(self.meta["in_shapes"][name])
        if tuple(x.shape) != expected:
            raise DataError(f"{name}: got shape {tuple(x.shape)}, the model expects {expected}")
        return x

    def chat(self) -> Chat:
        return Chat(self)


class Chat:
    """A conversation: attached inputs, then turns. History beyond the context window is dropped oldest first
    (the attachments stay, in the first turn kept, as in training). A refused message leaves it unchanged."""

    def __init__(self, run: AssistantRun) -> None:
        self.run, self.fmt = run, run.fmt
        self.attached: dict[str, torch.Tensor] = {}
        self.turns: list[Turn] = []
        self.dropped = 0  # turns dropped so far to fit the window

    def reset(self) -> None:
        self.attached, self.turns, self.dropped = {}, [], 0

    def attach(self, name: str, value: Any) -> bool:
        """Attach an input; True when it replaced one already attached, which starts the turns afresh."""
        x = self.run.attachment(name, value)
        replaced = name in self.attached
        if replaced:
            self.turns = []
        self.attached[name] = x
        return replaced

    def prompt(self, question: str) -> tuple[list[int], list[Turn]]:
        """The ids to answer ``question`` after the history that fits, and the turns they hold."""
        if not question.strip():
            raise DataError("the message is empty; type a question")
        names = tuple(n for n in self.fmt.inputs if n in self.attached)
        room = self.run.block_size - 1  # at least one answer token
        history = list(self.turns)
        while True:
            turns = [Turn(t.question, (), t.answer) for t in history] + [Turn(question)]
            turns[0].attached = names
            ids, _ = self.fmt.encode(turns)
            if len(ids) <= room:
                return ids, turns
            if not history:
                raise DataError(
                    f"the message is {len(ids)} tokens with its attachments; this model's context holds "
                    f"{room}; shorten it"
                )
            history.pop(0)

    def ask(self, question: str, max_tokens: int | None = None) -> Iterator[str]:
        """Stream the answer's text piece by piece (greedy, KV cache); the turn joins the history at the end.
        Errors in the message are raised before anything is yielded."""
        ids, turns = self.prompt(question)
        return self._answer(question, ids, turns, max_tokens or self.run.recipe.model.max_answer_tokens)

    def _answer(self, question: str, ids: list[int], turns: list[Turn], max_tokens: int) -> Iterator[str]:
        tokens = torch.tensor([ids], dtype=torch.long)
        inputs = {n: x.unsqueeze(0) for n, x in self.attached.items()}
        out: list[int] = []
        shown = ""
        for step in self.run.model.stream(tokens, inputs, None, max_tokens):
            tok = int(step[0])
            if tok == self.fmt.end:
                break
            out.append(tok)
            text = self.fmt.decode(out)
            if "\ufffd" not in text and len(text) > len(shown):  # a BPE token may end inside a character
                yield text[len(shown) :]
                shown = text
        self.dropped += len(self.turns) - (len(turns) - 1)
        self.turns = [*turns[:-1], Turn(question, (), self.fmt.decode(out))]
