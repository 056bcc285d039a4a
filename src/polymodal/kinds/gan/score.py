"""Conditional accuracy: how often a separately trained classifier agrees with the class a GAN was asked for.

The classifier is an ordinary polymodal run (any single-image classification recipe), trained into
``<gan run>/classifier`` on the GAN's dataset with the GAN's split fractions and seed, so its test accuracy
on real held-out images is the reference the generated images are compared against.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polymodal.errors import ConfigError
from polymodal.gan.sample import generate, to_uint8
from polymodal.kinds.base import train
from polymodal.kinds.gan.recipe import GANRecipe
from polymodal.kinds.supervised.predictor import RunPredictor
from polymodal.schema import read_recipe_yaml


def classifier_recipe(recipe: GANRecipe) -> dict[str, Any]:
    """The evaluation classifier's recipe with data, split and seed forced to the GAN's."""
    spec = recipe.evaluation.classifier
    raw = copy.deepcopy(spec) if isinstance(spec, dict) else read_recipe_yaml(spec)[0]
    if raw.get("kind", "supervised") != "supervised":
        raise ConfigError(f"evaluation.classifier: give a supervised image classifier recipe, not kind: {raw['kind']}")
    images = [i for i in raw.get("inputs", []) if isinstance(i, dict) and i.get("modality") == "image"]
    if len(raw.get("inputs", [])) != 1 or not images:
        raise ConfigError("evaluation.classifier: the recipe must have exactly one input, of modality image")
    d = recipe.data
    images[0]["column"] = d.image_column
    data = {k: v for k, v in raw.get("data", {}).items() if k not in ("table", "split_column")}
    data.update(
        dataset=d.dataset,
        options=dataclasses.asdict(d.options),
        label=d.label,
        val_fraction=d.val_fraction,
        test_fraction=d.test_fraction,
    )
    return {**raw, "name": f"{recipe.name}-classifier", "seed": recipe.seed, "data": data}


def train_classifier(recipe: GANRecipe, run: Path, callback: Any = None) -> Path:
    """Train (or finish, or reuse) the evaluation classifier in ``run/classifier``."""
    where = run / "classifier"
    if (where / "metrics.json").is_file():
        return where
    resume = (where / "checkpoints" / "latest").is_file()
    train(None if resume else classifier_recipe(recipe), where, resume=resume, callback=callback)
    return where


class Scorer:
    """A trained single-image classifier run applied to generated images (as uint8 pictures, through the
    run's own image transform, exactly as a PNG of them would be read)."""

    def __init__(self, classifier_dir: Path) -> None:
        self.predictor = RunPredictor(classifier_dir, device="cpu")  # scores the CPU-trained GAN's images
        self.input = next(iter(self.predictor.inputs))
        self.classes = list(self.predictor.classes)
        metrics = self.predictor.rundir.record()
        self.real_test_accuracy: float = metrics["test"]["accuracy"]
        self.real_test_n: int = metrics["test"].get("n", 0)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch: int = 500) -> np.ndarray:
        """(N, C, H, W) in [-1, 1] -> (N,) predicted class names."""
        transform = self.predictor.transforms[self.input]
        arrays = to_uint8(images)
        out = []
        for i in range(0, len(arrays), batch):
            x = torch.stack([transform(a) for a in arrays[i : i + batch]])
            out.append(self.predictor.model({self.input: x}).logits.argmax(1).numpy())
        return np.asarray(self.classes, dtype=object)[np.concatenate(out)]


def conditional_accuracy(
    generator: torch.nn.Module, classes: list[str], scorer: Scorer, per_class: int, seed: int
) -> dict[str, Any]:
    """Generate ``per_class`` images of every class and report how often the classifier names that class."""
    unknown = sorted(set(classes) - set(scorer.classes))
    if unknown:
        raise ConfigError(f"evaluation.classifier does not know classes {unknown}; train it on the GAN's labels")
    wanted = torch.arange(len(classes)).repeat_interleave(per_class)
    predicted = scorer.predict(generate(generator, wanted, seed))
    agree = predicted == np.asarray(classes, dtype=object)[wanted.numpy()]
    per = {c: float(agree[i * per_class : (i + 1) * per_class].mean()) for i, c in enumerate(classes)}
    return {"accuracy": float(agree.mean()), "n": int(agree.size), "per_class": per}
