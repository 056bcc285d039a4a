"""``polymodal datasets``: the built-in real datasets and where each is found."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from polymodal.cli.render import out
from polymodal.registry import DATASETS

app = typer.Typer(no_args_is_help=True, help="Built-in real datasets.")


@app.command(
    "list", help="List built-in datasets and where each is found.\n\n[b]Example[/b]\n\n  polymodal datasets list"
)
def list_() -> None:
    t = Table(title="Built-in datasets")
    for col in ("name", "what", "status"):
        t.add_column(col)
    for entry in DATASETS.entries():
        options = entry.config()
        t.add_row(entry.name, entry.summary, entry.factory(**dataclasses.asdict(options)).status())
    out.print(t)


@app.command(
    "export-avmnist",
    help=(
        "Write a recipe's image + audio split in MultiBench's AV-MNIST layout (image/, audio/, *_labels.npy), "
        "training rows then validation rows, so another toolkit trains on exactly the same examples.\n\n"
        "[b]Example[/b]\n\n  polymodal datasets export-avmnist avdigits_hard /tmp/avmnist_hard"
    ),
)
def export_avmnist(
    recipe: Annotated[str, typer.Argument(help="Recipe YAML path or built-in name (one image and one audio input).")],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe key: seed=1.")] = None,
) -> None:
    from polymodal import api
    from polymodal.data.datasets.avmnist import export_avmnist as export

    meta = export(api.load_recipe(recipe, set_ or ()), out_dir)
    out.print(
        f"written: {out_dir} (train {meta['train']}, val {meta['val']}, test {meta['test']} rows; {meta['source']})",
        highlight=False,
        soft_wrap=True,
    )
