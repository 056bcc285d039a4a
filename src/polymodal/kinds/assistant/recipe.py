"""The ``kind: assistant`` recipe: a question-answering dataset, the inputs' encoders, the decoder's shape."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field

from polymodal.config import TrainerConfig, inputs_to_dicts, parse_inputs
from polymodal.errors import ConfigError
from polymodal.registry import DATASETS
from polymodal.schema import Heads, Layers, Width, parse_dataclass


@dataclass
class AssistantData:
    """Where the questions come from (a built-in QA dataset) and how training conversations are made."""

    dataset: str = "avdigits_qa"
    options: Any = None
    # Training conversations hold 1..max_turns questions about the same inputs (so chat keeps working after the
    # first turn); validation and test ask one question each.
    max_turns: Annotated[int, Field(ge=1, le=16)] = 3
    tokenizer: Literal["bpe", "char"] = "bpe"
    vocab_size: Annotated[int, Field(ge=258, le=65536)] = 320  # BPE only


@dataclass
class AssistantModelConfig:
    """The decoder and how each input reaches it: ``tokens_per_input`` embeddings (K) per attached input,
    projected from its encoder's vector, placed where the prompt has ``<input name>``."""

    tokens_per_input: Annotated[int, Field(ge=1, le=64)] = 4
    projector: Literal["linear", "mlp"] = "mlp"
    n_layer: Layers = 2
    n_head: Heads = 4
    n_embd: Width = 128
    block_size: Annotated[int, Field(ge=8, le=4096)] = 96
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    max_answer_tokens: Annotated[int, Field(ge=1, le=512)] = 16  # greedy decoding stops here at the latest


@dataclass
class AssistantRecipe:
    """A multimodal question-answering run (``kind: assistant``)."""

    name: str
    inputs: list[Any]
    kind: Literal["assistant"] = "assistant"
    seed: Annotated[int, Field(ge=0)] = 0
    data: AssistantData = field(default_factory=AssistantData)
    model: AssistantModelConfig = field(default_factory=AssistantModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    init_from: str | None = None  # a finished kind: lm run: its tokenizer and decoder weights are the start
    # A finished supervised run whose encoders (and fitted transforms) start the inputs of the same name; its
    # preprocessing and encoder settings must be these. freeze_encoders keeps them as they are.
    encoders_from: str | None = None
    freeze_encoders: bool = False


def parse_assistant_recipe(raw: dict[str, Any], source: str = "recipe") -> AssistantRecipe:
    """Validate a ``kind: assistant`` mapping; errors are one line naming the key."""
    try:
        recipe = parse_dataclass(AssistantRecipe, raw, where="")
        recipe.inputs = parse_inputs(recipe.inputs)
        recipe.data.options = parse_dataclass(
            DATASETS.get(recipe.data.dataset).config, recipe.data.options, "data.options"
        )
        if recipe.model.n_embd % recipe.model.n_head:
            raise ConfigError(f"model.n_embd {recipe.model.n_embd} must be divisible by model.n_head")
        if recipe.freeze_encoders and not recipe.encoders_from:
            raise ConfigError("freeze_encoders: needs encoders_from (a run whose encoders are trained)")
        if recipe.trainer.monitor == "macro_f1":
            raise ConfigError("trainer.monitor: an assistant run monitors accuracy (exact match) or loss")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}".replace(": : ", ": ")) from None
    return recipe


def assistant_recipe_to_dict(recipe: AssistantRecipe) -> dict[str, Any]:
    out = dataclasses.asdict(recipe)
    out["inputs"] = inputs_to_dicts(recipe.inputs)
    return out
