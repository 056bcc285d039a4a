"""A finished (or checkpointed) GAN run, ready to sample."""

from __future__ import annotations

from pathlib import Path

import torch

from polymodal.errors import DataError
from polymodal.gan.condition import BagOfWords
from polymodal.gan.sample import build_gan, generate, save_grid
from polymodal.kinds.gan.recipe import parse_gan_recipe
from polymodal.runs import RunDir
from polymodal.schema import read_recipe_yaml
from polymodal.storage import load_weights

META: dict[str, type | tuple[type, ...]] = {"image_shape": list, "condition": str, "cond_dim": int, "classes": list}


class GANRun:
    """A finished (or checkpointed) GAN run, ready to sample: ``GANRun(dir).sample(label="7", n=16)``."""

    def __init__(self, run_dir: str | Path | RunDir) -> None:
        self.rundir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
        self.run_dir = self.rundir.path
        self.rundir.require("recipe.yaml", "meta.json", "weights.safetensors")
        self.meta = self.rundir.fields(META)
        raw, source = read_recipe_yaml(self.rundir.recipe_file)
        self.recipe = parse_gan_recipe(raw, source)
        vocab = self.rundir / "vocab.json"
        self.bow = BagOfWords.from_state(self.rundir.read_json("vocab.json")) if vocab.is_file() else None
        self.classes: list[str] = self.meta["classes"]
        self.gan = build_gan(
            self.recipe.generator, self.recipe.critic, self.meta["image_shape"], self.meta["condition"],
            self.meta["cond_dim"],
        )  # fmt: skip
        load_weights(self.gan, self.rundir.weights)
        self.gan.eval()

    def condition(self, label: str | None = None, text: str | None = None) -> torch.Tensor:
        """One condition (1,) or (1, V) from a class name or a caption; errors say what this run takes."""
        kind = self.meta["condition"]
        if kind == "label":
            if label is None or text is not None:
                raise DataError(f"this run is conditioned on a class: give --label (one of {', '.join(self.classes)})")
            if str(label) not in self.classes:
                raise DataError(f"unknown label {label!r}; this run knows {', '.join(self.classes)}")
            return torch.tensor([self.classes.index(str(label))])
        if text is None or label is not None:
            raise DataError("this run is conditioned on text: give --text 'a caption'")
        assert self.bow is not None
        if not self.bow.known(text):
            some = ", ".join(list(self.bow.index)[:12])
            raise DataError(f"no word of {text!r} is in this run's vocabulary; try words such as {some}")
        return self.bow.encode([text])

    def sample(self, label: str | None = None, text: str | None = None, n: int = 16, seed: int = 0) -> torch.Tensor:
        """(n, C, H, W) images in [-1, 1] for one condition."""
        c = self.condition(label, text)
        return generate(self.gan.generator, c.expand(n, *c.shape[1:]).contiguous(), seed)

    def save_sample(
        self, out: str | Path, label: str | None = None, text: str | None = None, n: int = 16, seed: int = 0
    ) -> Path:
        images = self.sample(label, text, n, seed)
        return save_grid(images, [str(label if label is not None else text)], Path(out))
