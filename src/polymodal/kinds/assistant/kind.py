"""``kind: assistant``: multimodal question answering and chat.

A run kind rather than a head: a head reads one fused vector, but the assistant's inputs enter the decoder as
token embeddings at the places its prompt names (``<image>``, ``<audio>``), interleaved with text, and its
examples are conversations (questions and answers about one example's inputs), not rows with one label.
The encoders, the tokenizer, the GPT and the Trainer are the project's own; optionally the decoder starts
from a finished ``kind: lm`` run (its tokenizer and weights; ``init_from``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from polymodal.errors import ConfigError
from polymodal.gpt.tokenizer import load_tokenizer
from polymodal.kinds.assistant.build import (
    build_assistant,
    gpt_config,
    load_encoders,
    load_pretrained,
    supervised_encoders,
)
from polymodal.kinds.assistant.data import build_qa_data
from polymodal.kinds.assistant.recipe import AssistantRecipe, assistant_recipe_to_dict, parse_assistant_recipe
from polymodal.kinds.assistant.run import AssistantRun
from polymodal.kinds.assistant.scores import qa_scores
from polymodal.kinds.base import Callback, RunKind, RunResult, finish
from polymodal.kinds.lm.run import LMRun
from polymodal.runs import RunDir
from polymodal.training.distributed import Dist
from polymodal.training.steps import supervised_step
from polymodal.training.trainer import Trainer


class AssistantKind(RunKind):
    """Questions about images, sounds or series, answered by a GPT that reads their embeddings."""

    title = "assistant"
    recipe = AssistantRecipe
    verbs = frozenset({"evaluate", "report", "chat", "serve"})
    on_device = True
    why_not = {"export": "an assistant writes its answers token by token in a decode loop, which export does not cover"}
    paths = ("init_from", "encoders_from", "data.options.fsdd_dir")

    def parse(self, raw: dict[str, Any], source: str) -> AssistantRecipe:
        return parse_assistant_recipe(raw, source)

    def to_dict(self, recipe: AssistantRecipe) -> dict[str, Any]:
        return assistant_recipe_to_dict(recipe)

    def train(
        self, recipe: AssistantRecipe, run: RunDir, resume: bool, callback: Callback | None, dist: Dist
    ) -> RunResult:
        torch.manual_seed(recipe.seed)
        base = LMRun(recipe.init_from) if recipe.init_from else None
        if base is not None:  # the decoder's shape is the language model's
            m = base.meta["model"]
            recipe.model = dataclasses.replace(
                recipe.model, n_layer=m["n_layer"], n_head=m["n_head"], n_embd=m["n_embd"]
            )
        names = [s.name for s in recipe.inputs]
        encoders, states = supervised_encoders(recipe.encoders_from, names) if recipe.encoders_from else ({}, {})
        tokenizer = base.tokenizer if base is not None else None
        if resume and (run / "tokenizer.json").is_file():  # the ids the checkpoint was trained with
            tokenizer = load_tokenizer(run.read_json("tokenizer.json")["base"])
        data = build_qa_data(recipe, tokenizer, states)
        if callback and dist.is_main:
            sizes = {"train conversations": len(data.train), "val questions": len(data.val), "test": len(data.test)}
            callback("data", source=data.source, sizes=sizes)
        first = data.train[0][0]
        in_shapes = {n: list(first[n].shape) for n in data.fmt.inputs}
        contexts = {n: t.context() for n, t in data.transforms.items()}
        cfg = gpt_config(recipe, data.fmt.vocab_size, base.meta["model"] if base is not None else None)
        model = build_assistant(recipe, data.fmt, in_shapes, contexts, cfg)
        if base is not None and not resume:
            load_pretrained(model.gpt, base.model.state_dict())
        if encoders and not resume:
            load_encoders(model, encoders, str(recipe.encoders_from))
        model.freeze_encoders(recipe.freeze_encoders)
        meta = {
            "model": dataclasses.asdict(cfg),
            "in_shapes": in_shapes,
            "contexts": contexts,
            "data_source": data.source,
            "examples": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
            "parameters": sum(p.numel() for p in model.parameters()),
            "seed": recipe.seed,
            "init_from": recipe.init_from,
            "encoders_from": recipe.encoders_from,
        }
        if dist.is_main:
            if not resume:
                run.write_recipe(self.to_dict(recipe))
            run.write_json("tokenizer.json", data.fmt.state_dict())
            run.write_json("transforms.json", {n: t.state_dict() for n, t in data.transforms.items()})
            run.write_meta(self.name, meta, data.data_hash)
        step = supervised_step(model, recipe.trainer, data.train, data.val, recipe.seed, dist)
        fit = Trainer(step, recipe.trainer, run, recipe.seed, callback, dist).fit(resume)
        test = qa_scores(model, data.test, data.test_rows, step.evaluator)
        return finish(self, run, fit, test, data.source, dist, model=model, data=data)

    def load(self, run: RunDir, device: str | None = None) -> AssistantRun:
        if device not in (None, "auto", "cpu"):  # chat decodes one token at a time: the CPU path is the one built
            raise ConfigError(f"an assistant run answers on the CPU; drop device {device!r} (or give cpu)")
        return AssistantRun(run)

    def describe(self, metrics: dict[str, Any], split: str) -> list[str]:
        lines = [f"{split}: exact match {metrics['accuracy']:.4f} over {metrics['n']} questions"]
        if "needs_both" in metrics:
            lines.append(f"  questions needing every input: {metrics['needs_both']:.4f}")
        for key in ("unseen_paraphrase", "unseen_combination"):
            if key in metrics:
                lines.append(f"  {key.replace('_', ' ')}s: {metrics[key]:.4f}")
        names = list(metrics.get("without", {}))
        head = f"  {'question':<10} {'exact':>6}" + "".join(f"  {'no ' + n:>10} {'chance':>6}" for n in names)
        lines.append(head)
        for q, acc in metrics["by_question"].items():
            row = f"  {q:<10} {acc:>6.3f}"
            for n in names:
                row += f"  {metrics['without'][n][q]:>10.3f} {metrics['chance_without'][n][q]:>6.3f}"
            lines.append(row)
        return lines

    def example(self, folder: Path) -> dict[str, Any]:
        fsdd = folder / "fsdd" / "recordings"
        fsdd.mkdir(parents=True, exist_ok=True)
        t = np.arange(2400) / 8000
        for digit in range(10):  # tones in FSDD's file naming: 0-4 test, 5-49 train (official split)
            for index in (0, *range(5, 11)):
                rng = np.random.default_rng([digit, index])
                wave = 0.4 * np.sin(2 * np.pi * (300 + 300 * digit) * t) + 0.05 * rng.normal(size=t.size)
                sf.write(fsdd / f"{digit}_tone_{index}.wav", wave.astype(np.float32), 8000)
        return {
            "name": "example-assistant",
            "kind": "assistant",
            "data": {"dataset": "avdigits_qa", "options": {"fsdd_dir": str(folder / "fsdd"), "pairs_per_recording": 1,
                                                           "test_pairs_per_recording": 1}},
            "inputs": [
                {"name": "image", "modality": "image", "preprocessing": {"size": 28, "channels": 1},
                 "encoder": {"name": "image_cnn", "width": 4, "depth": 1, "out_dim": 16}},
                {"name": "audio", "modality": "audio", "preprocessing": {"n_mels": 16, "max_frames": 32},
                 "encoder": {"name": "audio_cnn", "width": 4, "depth": 1, "out_dim": 16}},
            ],
            "model": {"tokens_per_input": 2, "n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 96},
            "trainer": {"epochs": 1, "batch_size": 32, "lr": 0.003, "checkpoint_every": 0, "threads": 1},
        }  # fmt: skip

    def example_use(self, run: Path, folder: Path) -> list[str]:
        wav = next((folder / "fsdd" / "recordings").glob("3_*"))
        return ["chat", str(run), "--audio", str(wav), "--message", "What digit is spoken?"]
