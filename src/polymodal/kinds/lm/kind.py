"""``kind: lm``: a GPT trained on a text corpus by the project's Trainer (nanoGPT's recipe, from scratch), or
fine-tuned from another lm run (``init_from``). An "epoch" is ``data.steps_per_epoch`` batches of random
``block_size`` windows, then validation on fixed windows of the held-out end of the corpus."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch

from polymodal.gpt.model import GPT, GPTConfig
from polymodal.gpt.tokenizer import load_tokenizer
from polymodal.kinds.base import Callback, RunKind, RunResult, finish
from polymodal.kinds.lm.data import BUILTIN, build_lm_data
from polymodal.kinds.lm.model import LanguageModel
from polymodal.kinds.lm.recipe import LMRecipe, lm_recipe_to_dict, parse_lm_recipe
from polymodal.kinds.lm.run import LMRun
from polymodal.runs import RunDir
from polymodal.training.distributed import Dist
from polymodal.training.steps import supervised_step
from polymodal.training.trainer import Trainer

WORDS = " ".join(
    [
        "The quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun.",
        "A language model reads text and learns which character is likely to come next.",
    ]
)


class LMKind(RunKind):
    """A GPT language model on a text corpus."""

    title = "language-model"
    recipe = LMRecipe
    verbs = frozenset({"evaluate", "report", "generate", "serve"})
    distributed = True
    on_device = True
    why_not = {"export": "a language model writes text token by token in a decode loop, which export does not cover"}
    paths = ("data.corpus", "init_from")
    split = "val"

    def parse(self, raw: dict[str, Any], source: str) -> LMRecipe:
        return parse_lm_recipe(raw, source)

    def to_dict(self, recipe: LMRecipe) -> dict[str, Any]:
        return lm_recipe_to_dict(recipe)

    def is_path(self, key: str, value: str, base: Path | None) -> bool:
        return not (key == "data.corpus" and value in BUILTIN)

    def train(self, recipe: LMRecipe, run: RunDir, resume: bool, callback: Callback | None, dist: Dist) -> RunResult:
        """Pretrain (or, with ``init_from``, fine-tune) a GPT on the recipe's corpus."""
        torch.manual_seed(recipe.seed)
        base, tokenizer = None, None
        if resume and (run / "tokenizer.json").is_file():
            tokenizer = load_tokenizer(run.read_json("tokenizer.json"))
        if recipe.init_from:
            base = LMRun(recipe.init_from)
            tokenizer = tokenizer or base.tokenizer
            # The architecture is the base model's; only dropout may differ when fine-tuning.
            recipe.model = GPTConfig(**{**base.meta["model"], "dropout": recipe.model.dropout})
        data = build_lm_data(recipe, tokenizer)
        if callback and dist.is_main:
            callback(
                "data",
                source=data.source,
                sizes={"train tokens": len(data.train.tokens), "val tokens": len(data.val.tokens)},
            )
        cfg = dataclasses.replace(recipe.model, vocab_size=data.tokenizer.vocab_size)
        model = LanguageModel(GPT(cfg))
        if base is not None and not resume:
            model.gpt.load_state_dict(base.model.state_dict())
        meta = {
            "model": dataclasses.asdict(cfg),
            "data_source": data.source,
            "tokens": {"train": len(data.train.tokens), "val": len(data.val.tokens)},
            "seed": recipe.seed,
            "parameters": model.gpt.num_params(),
            "init_from": recipe.init_from,
        }
        if dist.is_main:
            if not resume:
                run.write_recipe(self.to_dict(recipe))
            run.write_json("tokenizer.json", data.tokenizer.state_dict())
            run.write_meta(self.name, meta, data.data_hash)
        step = supervised_step(model, recipe.trainer, data.train, data.val, recipe.seed, dist)
        fit = Trainer(step, recipe.trainer, run, recipe.seed, callback, dist).fit(resume)
        val = step.evaluator.evaluate(data.val)
        return finish(self, run, fit, val, data.source, dist, model=model, data=data)

    def load(self, run: RunDir, device: str | None = None) -> LMRun:
        return LMRun(run, device)

    def describe(self, metrics: dict[str, Any], split: str) -> list[str]:
        loss = metrics["loss"]
        return [f"{split} loss {loss:.4f}  perplexity {math.exp(loss):.2f}  token accuracy {metrics['accuracy']:.4f}"]

    def example(self, folder: Path) -> dict[str, Any]:
        corpus = folder / "corpus.txt"
        corpus.write_text((WORDS + "\n") * 60, encoding="utf-8")
        return {
            "name": "example-lm",
            "kind": "lm",
            "data": {"corpus": str(corpus), "steps_per_epoch": 8, "eval_batches": 2},
            "model": {"block_size": 16, "n_layer": 1, "n_head": 2, "n_embd": 16},
            "trainer": {"epochs": 2, "batch_size": 8, "lr": 0.003, "checkpoint_every": 0, "threads": 1},
        }

    def example_use(self, run: Path, folder: Path) -> list[str]:
        return ["generate", str(run), "--prompt", "The ", "--max-tokens", "8", "--seed", "1"]
