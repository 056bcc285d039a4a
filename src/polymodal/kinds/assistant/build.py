"""Building an assistant's model from its recipe, and starting its decoder from a pretrained language model."""

from __future__ import annotations

from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from polymodal.errors import CheckpointError
from polymodal.gpt.model import GPT, GPTConfig
from polymodal.kinds.assistant.model import AssistantModel
from polymodal.kinds.assistant.recipe import AssistantRecipe
from polymodal.kinds.assistant.tokens import ChatFormat
from polymodal.registry import ENCODERS
from polymodal.runs import RunDir


def gpt_config(recipe: AssistantRecipe, vocab_size: int, base: dict[str, Any] | None = None) -> GPTConfig:
    """The decoder's shape: the recipe's, or a pretrained LM's (``base``, its meta's model) with the recipe's
    block size and dropout and the vocabulary grown by the special tokens."""
    m = recipe.model
    if base is not None:
        return GPTConfig(**{**base, "vocab_size": vocab_size, "block_size": m.block_size, "dropout": m.dropout})
    return GPTConfig(
        vocab_size=vocab_size, block_size=m.block_size, n_layer=m.n_layer, n_head=m.n_head, n_embd=m.n_embd,
        dropout=m.dropout,
    )  # fmt: skip


def build_assistant(
    recipe: AssistantRecipe,
    fmt: ChatFormat,
    in_shapes: dict[str, Any],
    contexts: dict[str, dict[str, Any]],
    cfg: GPTConfig,
) -> AssistantModel:
    encoders = {
        s.name: ENCODERS.build(s.encoder.name, s.encoder.params, in_shape=tuple(in_shapes[s.name]), **contexts[s.name])
        for s in recipe.inputs
    }
    placeholders = {n: fmt.placeholder(n) for n in fmt.inputs}
    return AssistantModel(encoders, GPT(cfg), placeholders, fmt.k, recipe.model.projector, fmt.end)


@torch.no_grad()
def load_pretrained(gpt: GPT, state: dict[str, torch.Tensor]) -> None:
    """Copy a language model's weights into ``gpt``: every tensor of the same shape, and the leading rows of the
    token and position tables (the special tokens and any extra positions keep their fresh init)."""
    own = gpt.state_dict()
    for name, value in state.items():
        if name not in own:
            continue
        target = own[name]
        if target.shape == value.shape:
            target.copy_(value)
        elif name in ("wte.weight", "wpe.weight", "lm_head.weight") and target.shape[1:] == value.shape[1:]:
            n = min(len(target), len(value))
            target[:n].copy_(value[:n])


def supervised_encoders(path: str, names: list[str]) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """``({input: encoder state}, {input: transform state})`` of the inputs ``names`` that a finished supervised
    run also has (it keeps each encoder under ``encoders.<input>.``)."""
    run = RunDir(path)
    run.require("transforms.json", "weights.safetensors", needs="encoders_from needs a finished supervised run")
    if run.kind != "supervised":
        raise CheckpointError(f"encoders_from: {path} is a kind: {run.kind} run; give a supervised run")
    try:
        state = load_file(str(run.weights))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"encoders_from: cannot read {run.weights}: {exc}") from None
    encoders = {}
    for name in names:
        prefix = f"encoders.{name}."
        found = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if found:
            encoders[name] = found
    if not encoders:
        raise CheckpointError(
            f"encoders_from: {path} has no encoder for any of this recipe's inputs ({', '.join(names)})"
        )
    transforms = run.read_json("transforms.json")
    return encoders, {n: transforms[n] for n in encoders if n in transforms}


def load_encoders(model: AssistantModel, states: dict[str, dict[str, torch.Tensor]], source: str) -> None:
    for name, state in states.items():
        own = model.encoders[name].state_dict()
        bad = set(own) ^ set(state) or {k for k in own if own[k].shape != state[k].shape}
        if bad:
            raise CheckpointError(
                f"encoders_from: the encoder of '{name}' in {source} does not fit this recipe's ({sorted(bad)[:3]}); "
                f"use the encoder and preprocessing settings of {source}/recipe.yaml"
            )
        model.encoders[name].load_state_dict(state)
