"""``kind: supervised`` (the default): each input through its encoder, fused, a head trained on the labels."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from polymodal.config import Recipe, parse_recipe, recipe_to_dict
from polymodal.data.dataset import build_data
from polymodal.errors import ConfigError, DataError
from polymodal.kinds.base import Callback, Outputs, RunKind, RunResult, finish
from polymodal.kinds.supervised.files import (
    check_same_everywhere,
    data_meta,
    saved_transforms,
    transform_states,
    write_run_start,
)
from polymodal.kinds.supervised.init_from import init_encoders, pretrained_transforms
from polymodal.kinds.supervised.predictor import RunPredictor
from polymodal.model import build_model
from polymodal.runs import RunDir
from polymodal.training.distributed import Dist
from polymodal.training.evaluator import Evaluator, modality_ablation
from polymodal.training.steps import supervised_step
from polymodal.training.trainer import Trainer

HEADLINE = (
    ("macro_f1", "macro F1"),
    ("micro_f1", "micro F1"),
    ("bleu4", "BLEU-4"),
    ("rouge_l", "ROUGE-L"),
    ("cider", "CIDEr"),
)


def check_monitor(recipe: Recipe, target: dict[str, Any]) -> None:
    """A multi-task head without classification tasks has no accuracy to monitor."""
    has_classes = target["kind"] != "multitask" or any(t["kind"] == "classification" for t in target["tasks"])
    if not has_classes and recipe.trainer.monitor != "loss":
        raise ConfigError(
            f"trainer.monitor: '{recipe.trainer.monitor}' needs a classification task; set trainer.monitor: loss"
        )


def train_supervised(
    kind: RunKind, recipe: Recipe, run: RunDir, resume: bool, callback: Callback | None, dist: Dist
) -> tuple[RunResult, dict[str, Any]]:
    """Train a supervised recipe into ``run``; returns the result and meta.json (a federated run trains the same
    model by rounds, see :mod:`polymodal.kinds.federated`)."""
    torch.manual_seed(recipe.seed)
    if recipe.trainer.threads:  # before the data: features computed later (augmented rows) use them too
        torch.set_num_threads(recipe.trainer.threads)
    states = saved_transforms(run, resume)
    if recipe.init_from is not None and not resume:
        states = pretrained_transforms(recipe.init_from, recipe)  # a pretrained text encoder needs its vocabulary
    progress = None
    if callback and dist.is_main:  # the first pass over the files, for a progress bar (files/s, time left)
        progress = lambda done, total, s: callback("prepare", done=done, total=total, seconds=s)  # noqa: E731
    data = build_data(recipe, transform_states=states, progress=progress)
    if callback and dist.is_main:
        callback("data", source=data.source, sizes={k: len(v) for k, v in data.splits.items()})
    check_monitor(recipe, data.target)
    contexts = {name: t.context() for name, t in data.transforms.items()}
    model = build_model(recipe, data.splits["train"].shapes, data.target, contexts)
    initialised = init_encoders(model.encoders, recipe.init_from, recipe) if recipe.init_from and not resume else {}
    check_same_everywhere(dist, transform_states(data))
    meta = data_meta(data, model, recipe.seed)
    if initialised:
        meta["init_from"] = {"run": recipe.init_from.run, "encoders": initialised}
    elif resume and run.meta_file.is_file():
        meta["init_from"] = run.meta().get("init_from")
    if dist.is_main:
        write_run_start(kind, run, recipe, data, meta, resume)
    step = supervised_step(model, recipe.trainer, data.splits["train"], data.splits["val"], recipe.seed, dist)
    fit = Trainer(step, recipe.trainer, run, recipe.seed, callback, dist).fit(resume)
    test = step.evaluator.evaluate(data.splits["test"])
    extra = {"test_without": modality_ablation(step.evaluator, data.splits["test"]), "skipped_rows": len(data.skipped)}
    result = finish(kind, run, fit, test, data.source, dist, extra, len(data.skipped), model, data)
    return result, meta


class SupervisedKind(RunKind):
    """Inputs with encoders, a fusion and a head (classification, multi-label, multi-task, caption)."""

    title = "supervised-model"
    recipe = Recipe
    verbs = frozenset({"evaluate", "report", "predict", "export", "serve"})
    distributed = True
    on_device = True
    paths = ("data.table", "data.disk_cache_dir", "init_from", "init_from.run")

    def parse(self, raw: dict[str, Any], source: str) -> Recipe:
        return parse_recipe(raw, source)

    def to_dict(self, recipe: Recipe) -> dict[str, Any]:
        return recipe_to_dict(recipe)

    def train(self, recipe: Recipe, run: RunDir, resume: bool, callback: Callback | None, dist: Dist) -> RunResult:
        return train_supervised(self, recipe, run, resume, callback, dist)[0]

    def load(self, run: RunDir, device: str | None = None) -> RunPredictor:
        return RunPredictor(run, device=device)

    def evaluate(
        self, run: RunDir, split: str = "test", table: Path | None = None, device: str | None = None
    ) -> dict[str, Any]:
        """Re-score the run's weights on a split of its own data, or on every row of another manifest."""
        t0 = time.perf_counter()
        out = self.outputs(run, split, table, device)
        p = out.predictor
        evaluator = Evaluator(p.model, max(p.recipe.trainer.batch_size, 128), device=p.device)
        result = {
            **out.metrics,
            "without": modality_ablation(evaluator, out.dataset),
            "split": table.name if table is not None else split,
            "seconds": round(time.perf_counter() - t0, 3),
        }
        if table is not None:
            result["skipped_rows"] = out.skipped
        return result

    def outputs(self, run: RunDir, split: str, table: Path | None, device: str | None = None) -> Outputs:
        """The model's outputs on ``split`` of its own data, or on every row of ``table`` (a data error is one
        PolymodalError; the report shows it as a note instead)."""
        if split not in ("train", "val", "test"):
            raise DataError(f"unknown split '{split}'; use train, val or test")
        p = self.load(run, device)
        skipped = 0
        if table is not None:
            ds, bad = p.table_data(table)
            skipped = len(bad)
        else:
            ds = p.data().splits[split].view()  # no training-time augmentation, even on the train split
        evaluator = Evaluator(p.model, max(p.recipe.trainer.batch_size, 128), device=p.device)
        outputs, targets, loss = evaluator.predict(ds)
        metrics = {"loss": loss, **p.model.metrics(outputs, targets)}
        return Outputs(p, ds, outputs, targets, metrics, loss, table, skipped)

    def describe(self, metrics: dict[str, Any], split: str) -> list[str]:
        """``polymodal evaluate``'s lines: per task for a multi-task head, else the head's headline metrics."""
        if "tasks" in metrics:
            out = [
                f"{split} {task}: " + "  ".join(f"{k} {v:.4f}" for k, v in tm.items() if isinstance(v, (int, float)))
                for task, tm in metrics["tasks"].items()
            ]
        elif "macro_precision" in metrics:
            out = [
                f"{split}: accuracy {metrics['accuracy']:.4f}  macro P {metrics['macro_precision']:.4f}  "
                f"macro R {metrics['macro_recall']:.4f}  macro F1 {metrics['macro_f1']:.4f}  (n={metrics['n']})"
            ]
        else:  # multi-label (exact set) and caption (exact match) heads
            out = [f"{split}: {self.headline(metrics)}"]
        if metrics.get("without"):
            out.append(
                "accuracy with one input missing: " + "  ".join(f"-{k} {v:.4f}" for k, v in metrics["without"].items())
            )
        return out

    @staticmethod
    def headline(metrics: dict[str, Any]) -> str:
        """``accuracy 0.9933  macro F1 0.9932`` (``exact match ...  BLEU-4 ...`` for a caption head)."""
        extra = "".join(f"  {label} {metrics[key]:.4f}" for key, label in HEADLINE if key in metrics)
        what = "exact match" if "bleu4" in metrics else "accuracy"
        return f"{what} {metrics['accuracy']:.4f}{extra}"

    def summary(self, result: RunResult) -> list[str]:
        """What ``polymodal train`` prints: the test metrics, sample captions, the privacy guarantee, accuracy
        with each input missing."""
        out = [f"{result.split} {self.headline(result.metrics)}  {self.footer(result)}"]
        out += [f"  reference {ref!r}  generated {hyp!r}" for ref, hyp in result.metrics.get("examples", [])]
        dp = result.record.get("privacy")
        if dp:
            out.append(
                f"differential privacy: epsilon {dp['epsilon']:.3f} at delta {dp['delta']:g} "
                f"(noise multiplier {dp['noise_multiplier']:.3f}, max grad norm {dp['max_grad_norm']:g}, "
                f"{dp['steps']} steps at sampling rate {dp['sample_rate']:.4f}, Poisson sampling, RDP accountant)"
            )
        without = result.record.get("test_without") or {}
        if without:
            out.append(
                "test accuracy with one input missing: " + "  ".join(f"-{k} {v:.4f}" for k, v in without.items())
            )
        return out

    def example(self, folder: Path) -> dict[str, Any]:
        return {
            "name": "example-supervised",
            "data": {"dataset": "mnist", "label_fraction": 0.05, "disk_cache": False},
            "inputs": [{"name": "image", "modality": "image", "encoder": {"name": "image_cnn", "width": 4}}],
            "trainer": {"epochs": 2, "batch_size": 32, "checkpoint_every": 0, "threads": 1},
        }

    def example_use(self, run: Path, folder: Path) -> list[str]:
        from PIL import Image

        from polymodal.data.datasets.mnist import mnist_arrays

        path = folder / "digit.png"
        Image.fromarray(mnist_arrays()[0][0]).save(path)
        return ["predict", str(run), "--image", str(path)]
