"""Build, load and sample a conditional GAN; save sample grids (one row per condition) as PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from PIL import Image, ImageDraw
from torch import nn

from polymodal.errors import CheckpointError, DataError
from polymodal.gan.condition import BagOfWords
from polymodal.gan.recipe import GANRecipe, parse_gan_recipe
from polymodal.registry import CRITICS, GENERATORS
from polymodal.train.checkpoint import atomic_write_text, load_weights


class GAN(nn.Module):
    """The generator and the critic of one run, saved and checkpointed together."""

    def __init__(self, generator: nn.Module, critic: nn.Module) -> None:
        super().__init__()
        self.generator, self.critic = generator, critic


def build_gan(recipe: GANRecipe, image_shape: tuple[int, int, int], cond_kind: str, cond_dim: int) -> GAN:
    context = {"image_shape": tuple(image_shape), "cond_kind": cond_kind, "cond_dim": cond_dim}
    g = GENERATORS.build(recipe.generator.name, recipe.generator.params, **context)
    d = CRITICS.build(recipe.critic.name, recipe.critic.params, **context)
    return GAN(g, d)


@torch.no_grad()
def generate(generator: nn.Module, conds: torch.Tensor, seed: int = 0, batch: int = 500) -> torch.Tensor:
    """(N, C, H, W) images in [-1, 1] for N conditions, with noise from a private seeded generator (the
    training RNG is left alone) and batch-norm statistics frozen (eval mode)."""
    was_training = generator.training
    generator.eval()
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(len(conds), generator.z_dim, generator=g)
    out = torch.cat([generator(z[i : i + batch], conds[i : i + batch]) for i in range(0, len(conds), batch)])
    generator.train(was_training)
    return out


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W) or (N, H, W, 3) uint8, as image files hold them."""
    x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x[:, 0].numpy() if x.shape[1] == 1 else x.permute(0, 2, 3, 1).numpy()


def save_grid(images: torch.Tensor, rows: list[str], path: Path, scale: int = 2, margin: int = 0) -> Path:
    """Tile (R·K, C, H, W) images R rows by K columns (row r = condition ``rows[r]``), upscaled ``scale``×,
    with the row's condition written in a left margin (``margin`` pixels; 0 picks one from the text)."""
    n, c, h, w = images.shape
    k = n // len(rows)
    tiles = to_uint8(images)
    mode = "L" if c == 1 else "RGB"
    pad, cell_h, cell_w = 2, h * scale, w * scale
    margin = margin or min(160, 8 + 6 * max(len(r) for r in rows))
    sheet = Image.new(mode, (margin + k * (cell_w + pad) + pad, len(rows) * (cell_h + pad) + pad), color="white")
    draw = ImageDraw.Draw(sheet)
    for r, text in enumerate(rows):
        y = pad + r * (cell_h + pad)
        draw.text((4, y + cell_h // 2 - 5), text[: (margin - 8) // 6], fill="black")
        for j in range(k):
            tile = Image.fromarray(tiles[r * k + j], mode=mode).resize((cell_w, cell_h), Image.NEAREST)
            sheet.paste(tile, (margin + pad + j * (cell_w + pad), y))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    sheet.save(tmp)
    tmp.replace(path)
    return path


class GANRun:
    """A finished (or checkpointed) GAN run, ready to sample: ``GANRun(dir).sample(label="7", n=16)``."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        for needed in ("recipe.yaml", "meta.json", "weights.safetensors"):
            if not (self.run_dir / needed).is_file():
                raise CheckpointError(f"{self.run_dir} has no {needed}; give a GAN run directory")
        self.meta = json.loads((self.run_dir / "meta.json").read_text(encoding="utf-8"))
        if self.meta.get("kind") != "gan":
            raise CheckpointError(f"{self.run_dir} is not a GAN run (kind {self.meta.get('kind', 'classifier')!r})")
        raw = yaml.safe_load((self.run_dir / "recipe.yaml").read_text(encoding="utf-8"))
        self.recipe = parse_gan_recipe(raw, str(self.run_dir / "recipe.yaml"))
        vocab = self.run_dir / "vocab.json"
        self.bow = BagOfWords.from_state(json.loads(vocab.read_text(encoding="utf-8"))) if vocab.is_file() else None
        self.classes: list[str] = self.meta["classes"]
        self.gan = build_gan(self.recipe, self.meta["image_shape"], self.meta["condition"], self.meta["cond_dim"])
        load_weights(self.gan, self.run_dir / "weights.safetensors")
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


def write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2))
