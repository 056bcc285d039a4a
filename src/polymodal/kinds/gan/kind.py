"""``kind: gan``: a conditional WGAN-GP image generator (class labels or captions as the condition), trained
by the one Trainer with :class:`~.step.GANStep`; optionally scored by a classifier trained on the same split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from polymodal.gan.sample import build_gan
from polymodal.kinds.base import Callback, RunKind, RunResult, finish
from polymodal.kinds.gan.data import load_gan_data
from polymodal.kinds.gan.recipe import GANRecipe, gan_recipe_to_dict, parse_gan_recipe
from polymodal.kinds.gan.run import GANRun
from polymodal.kinds.gan.score import Scorer, conditional_accuracy, train_classifier
from polymodal.kinds.gan.step import GANStep, write_grid
from polymodal.runs import RunDir
from polymodal.training.distributed import Dist
from polymodal.training.trainer import Trainer


class GANKind(RunKind):
    """A conditional GAN: ``polymodal sample`` draws images for a label or a caption."""

    title = "GAN"
    recipe = GANRecipe
    verbs = frozenset({"evaluate", "report", "sample"})
    paths = ("evaluation.classifier",)
    split = "generated"

    def parse(self, raw: dict[str, Any], source: str) -> GANRecipe:
        return parse_gan_recipe(raw, source)

    def to_dict(self, recipe: GANRecipe) -> dict[str, Any]:
        return gan_recipe_to_dict(recipe)

    def is_path(self, key: str, value: str, base: Path | None) -> bool:
        # A classifier is a built-in recipe name (mnist_classifier) or a YAML file.
        return value.endswith((".yaml", ".yml")) or (base is not None and (base / value).exists())

    def train(self, recipe: GANRecipe, run: RunDir, resume: bool, callback: Callback | None, dist: Dist) -> RunResult:
        """Train the GAN; the record holds the quality figure (with a classifier) and the generator steps."""
        emit = callback or (lambda event, **info: None)
        torch.manual_seed(recipe.seed)
        bow_state = run.read_json("vocab.json") if resume and (run / "vocab.json").is_file() else None
        data = load_gan_data(recipe, bow_state)
        shape = tuple(data.images.shape[1:])
        gan = build_gan(recipe.generator, recipe.critic, shape, recipe.data.condition, data.cond_dim)
        if not resume:
            run.write_recipe(self.to_dict(recipe))
        if data.bow is not None:
            run.write_json("vocab.json", data.bow.state_dict())
        meta = {
            "image_shape": list(shape),
            "condition": recipe.data.condition,
            "cond_dim": data.cond_dim,
            "classes": data.classes,
            "data_source": data.source,
            "train_images": len(data.images),
            "seed": recipe.seed,
            "parameters": {
                "generator": sum(p.numel() for p in gan.generator.parameters()),
                "critic": sum(p.numel() for p in gan.critic.parameters()),
            },
        }
        run.write_meta(self.name, meta, data.data_hash)
        scorer = None
        if recipe.evaluation.classifier is not None:
            emit("model_start", name="classifier", kind="supervised")
            scorer = Scorer(train_classifier(recipe, run.path, callback))
            emit("model_start", name="gan", kind=self.name)
        step = GANStep(gan, recipe, data, run.path, scorer)
        fit = Trainer(step, recipe.trainer, run, recipe.seed, callback, dist).fit(resume)
        write_grid(gan, recipe, data, run / "samples.png")
        metrics: dict[str, Any] = {"generator_steps": fit.summary["generator_steps"]}
        if scorer is not None:
            scored = conditional_accuracy(gan.generator, data.classes, scorer, recipe.evaluation.per_class, recipe.seed)
            metrics.update(
                conditional_accuracy=scored["accuracy"],
                generated_images=scored["n"],
                per_class=scored["per_class"],
                classifier_test_accuracy=scorer.real_test_accuracy,
            )
        return finish(self, run, fit, metrics, data.source, dist, model=gan, data=data)

    def load(self, run: RunDir, device: str | None = None) -> GANRun:
        return GANRun(run)  # a GAN trains and samples on the CPU

    def progress(self, row: dict[str, Any]) -> str:
        text = f"W {row['wasserstein']:.3f}  gp {row['gp']:.3f}  G {row['generator_loss']:.3f}"
        if "conditional_accuracy" in row:
            text += f"  cond acc {row['conditional_accuracy']:.3f}"
        return text

    def describe(self, metrics: dict[str, Any], split: str) -> list[str]:
        if metrics.get("conditional_accuracy") is None:
            return [f"{metrics.get('generator_steps')} generator steps; no quality figure (no classifier scored it)"]
        return [
            f"conditional accuracy {metrics['conditional_accuracy']:.4f} over {metrics['generated_images']} generated "
            f"images (classifier on real test images: {metrics['classifier_test_accuracy']:.4f})"
        ]

    def summary(self, result: RunResult) -> list[str]:
        return [
            *self.describe(result.metrics, result.split),
            f"{result.metrics['generator_steps']} generator steps, {result.seconds:.1f} s, data: {result.data_source}",
            f"samples: {result.run_dir / 'samples.png'} (one grid per epoch in samples/)",
        ]

    def example(self, folder: Path) -> dict[str, Any]:
        return {
            "name": "example-gan",
            "kind": "gan",
            "data": {"dataset": "mnist", "max_train": 64},
            "generator": {"name": "dcgan", "z_dim": 8, "width": 4, "embed_dim": 4},
            "critic": {"name": "dcgan", "width": 4, "feature_dim": 8},
            "trainer": {"epochs": 2, "steps_per_epoch": 2, "batch_size": 16, "n_critic": 1, "checkpoint_every": 0},
            "evaluation": {"grid_rows": 2, "grid_columns": 2, "classifier": None},
        }

    def example_use(self, run: Path, folder: Path) -> list[str]:
        return ["sample", str(run), "--label", "3", "--n", "2", "--out", str(folder / "threes.png")]
