"""``polymodal datasets``: the built-in real datasets and where each is found."""

from __future__ import annotations

import dataclasses

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
