"""The ``kind: lm`` recipe: a text corpus, a tokenizer, a GPT's shape, the trainer, a run to fine-tune."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field

from polymodal.config import TrainerConfig
from polymodal.errors import ConfigError
from polymodal.gpt.model import GPTConfig, config_problem
from polymodal.schema import parse_dataclass

DEFAULT_VOCAB = GPTConfig().vocab_size


@dataclass
class LMDataConfig:
    """Where the text comes from and how it is cut into training windows."""

    corpus: str = "tinyshakespeare"  # tinyshakespeare, clipart_captions, or a path to a UTF-8 text file
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1
    tokenizer: Literal["char", "bpe"] = "char"
    vocab_size: Annotated[int, Field(ge=258)] = 1024  # BPE only
    steps_per_epoch: Annotated[int, Field(ge=1)] = 250
    eval_batches: Annotated[int, Field(ge=1)] = 50
    # Characters a pretrained char tokenizer does not know: raise, or drop them from the text (fine-tuning).
    unknown: Literal["raise", "drop"] = "raise"


@dataclass
class LMRecipe:
    """A language-model run: ``kind: lm``, data, model shape, trainer, optional model to start from."""

    name: str
    kind: Literal["lm"] = "lm"
    seed: Annotated[int, Field(ge=0)] = 0
    data: LMDataConfig = field(default_factory=LMDataConfig)
    model: Any = None  # GPTConfig keys except vocab_size (the tokenizer decides it)
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(monitor="loss"))
    init_from: str | None = None  # a finished lm run directory to fine-tune (its tokenizer is reused)


def parse_lm_recipe(raw: dict[str, Any], source: str = "recipe") -> LMRecipe:
    """Validate a ``kind: lm`` mapping; errors are one line naming the key."""
    if isinstance(raw.get("trainer"), dict) and "monitor" not in raw["trainer"]:
        raw = {**raw, "trainer": {**raw["trainer"], "monitor": "loss"}}  # a language model monitors its loss
    try:
        recipe = parse_dataclass(LMRecipe, raw, where="")
        model = recipe.model or {}
        if not isinstance(model, dict):
            raise ConfigError(f"model: expected a mapping of keys, got {type(model).__name__} {model!r}")
        model = dict(model)
        if model.get("vocab_size") == DEFAULT_VOCAB:  # recipe.yaml of runs saved before it was left out
            del model["vocab_size"]
        if "vocab_size" in model:
            raise ConfigError("model.vocab_size comes from the tokenizer; remove it")
        recipe.model = parse_dataclass(GPTConfig, model, "model")
        problem = config_problem(recipe.model)
        if problem:
            raise ConfigError(f"model: {problem}")
        if recipe.trainer.monitor != "loss":
            raise ConfigError("trainer.monitor must be loss for a language model")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}".replace(": : ", ": ")) from None
    return recipe


def lm_recipe_to_dict(recipe: LMRecipe) -> dict[str, Any]:
    """The resolved recipe as plain data; the model's vocab_size is left out (the tokenizer decides it)."""
    out = dataclasses.asdict(recipe)
    out["model"].pop("vocab_size", None)
    return out
