"""``polymodal sample``: images from a finished GAN run for a label or a caption."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from polymodal.cli.render import out

HELP = """Generate images with a trained GAN run: one row of --n samples for a label or a caption.

[b]Examples[/b]

  polymodal sample runs/gan_mnist --label 7 --n 16 --out seven.png
  polymodal sample runs/gan_clipart --text "red apple fruit" --n 8 --out apple.png
"""


def command(
    run_dir: Annotated[Path, typer.Argument(help="A GAN run directory.")],
    out_path: Annotated[Path, typer.Option("--out", help="PNG file to write.")] = Path("samples.png"),
    label: Annotated[str | None, typer.Option(help="Class to generate (label-conditioned runs).")] = None,
    text: Annotated[str | None, typer.Option(help="Caption to generate from (text-conditioned runs).")] = None,
    n: Annotated[int, typer.Option(min=1, max=1024, help="Number of images.")] = 16,
    seed: Annotated[int, typer.Option(help="Noise seed.")] = 0,
) -> None:
    from polymodal import api

    path = api.sample_gan(run_dir, out_path, label, text, n, seed)
    out.print(f"wrote {n} images to {path}", highlight=False)
