"""``polymodal init``: the recipe ``polymodal fit`` would use for a table, written for editing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
import yaml

from polymodal.cli.fit import column_types
from polymodal.cli.render import out
from polymodal.errors import PolymodalError

HELP = """Write the recipe `polymodal fit` would train for a table, to read and edit before `polymodal train`.

[b]Examples[/b]

  polymodal init photos.csv --label category --out recipe.yaml
  polymodal train recipe.yaml
"""


def command(
    table: Annotated[Path, typer.Argument(help="The training table (file paths in it relative to it).")],
    label: Annotated[str, typer.Option(help="The column to predict.")],
    out_file: Annotated[Path, typer.Option("--out", help="The recipe to write.")] = Path("recipe.yaml"),
    presets: Annotated[str, typer.Option(help="fast, medium or best.")] = "medium",
    problem_type: Annotated[str | None, typer.Option(help="classification or regression (default: inferred).")] = None,
    column_type: Annotated[list[str] | None, typer.Option(help="COLUMN=TYPE overriding the inferred type.")] = None,
    force: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    from polymodal.kinds.supervised.auto import recipe_for_table
    from polymodal.predictor import read_data
    from polymodal.storage import atomic_write_text

    if out_file.exists() and not force:
        raise PolymodalError(f"{out_file} exists; choose another --out or pass --force to replace it")
    frame, _ = read_data(table)
    raw = recipe_for_table(table, frame, label, presets, problem_type, column_types(column_type), name=table.stem)
    # The table as the recipe's folder sees it: recipes read relative paths from their own folder.
    raw["data"]["table"] = os.path.relpath(table.resolve(), out_file.resolve().parent)
    header = f"# Written by `polymodal init {table} --label {label} --presets {presets}`; edit, then polymodal train.\n"
    atomic_write_text(out_file, header + yaml.safe_dump(raw, sort_keys=False))
    out.print(f"wrote {out_file}: {len(raw['inputs'])} input(s), head {raw['head']}; train it with:", highlight=False)
    out.print(f"  polymodal train {out_file}", highlight=False)
