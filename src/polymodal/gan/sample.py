"""A conditional GAN's two networks together, sampling them, and sample grids (one row per condition) as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from polymodal.registry import CRITICS, GENERATORS, ComponentSpec


class GAN(nn.Module):
    """The generator and the critic of one run, saved and checkpointed together."""

    def __init__(self, generator: nn.Module, critic: nn.Module) -> None:
        super().__init__()
        self.generator, self.critic = generator, critic


def build_gan(
    generator: ComponentSpec, critic: ComponentSpec, image_shape: tuple[int, ...], cond_kind: str, cond_dim: int
) -> GAN:
    """The registered generator and critic a recipe chose, for images of ``image_shape`` (C, H, W) and
    conditions of ``cond_kind`` (``label``: class indices; ``text``: bag-of-words vectors of ``cond_dim``)."""
    context = {"image_shape": tuple(image_shape), "cond_kind": cond_kind, "cond_dim": cond_dim}
    g = GENERATORS.build(generator.name, generator.params, **context)
    d = CRITICS.build(critic.name, critic.params, **context)
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
