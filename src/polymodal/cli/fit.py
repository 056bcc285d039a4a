"""``polymodal fit``: a model from a table with no recipe to write (types inferred, a preset's encoders)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from polymodal.cli.render import ProgressView, kind_named, lines, setup_logging
from polymodal.errors import PolymodalError

HELP = """Fit a model to a table (CSV/TSV/Parquet/JSONL): each column's type is inferred (image, audio, video
files, series, text, categories, numbers), a preset picks the encoders, and the recipe it used is written to
the run directory (RUN/recipe.yaml: `polymodal train RUN/recipe.yaml` reproduces the run).

[b]Examples[/b]

  polymodal fit photos.csv --label category                       [dim]# preset medium[/]
  polymodal fit photos.csv --label category --presets best --column-type notes=text
  polymodal fit sensors.parquet --label activity --run-dir runs/activity --set trainer.epochs=40
"""


def column_types(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        column, sep, kind = pair.partition("=")
        if not sep or not column or not kind:
            raise PolymodalError(f"--column-type '{pair}': write it as COLUMN=TYPE, e.g. --column-type photo=image")
        out[column] = kind
    return out


def command(
    table: Annotated[Path, typer.Argument(help="The training table (file paths in it relative to it).")],
    label: Annotated[str, typer.Option(help="The column to predict.")],
    presets: Annotated[str, typer.Option(help="fast, medium or best (pretrained image/text encoders).")] = "medium",
    problem_type: Annotated[str | None, typer.Option(help="classification or regression (default: inferred).")] = None,
    column_type: Annotated[
        list[str] | None, typer.Option(help="COLUMN=TYPE overriding the inferred type (repeatable).")
    ] = None,
    tuning: Annotated[Path | None, typer.Option(help="A table of validation rows (default: 10 % of the rows).")] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Output folder (default runs/LABEL-TIMESTAMP).")] = None,
    time_limit: Annotated[float | None, typer.Option(min=1, help="Seconds of training at most.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe key: trainer.epochs=3.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    from polymodal.predictor import Predictor

    setup_logging(verbose)
    predictor = Predictor(label, problem_type, presets, run_dir, column_types(column_type))
    with ProgressView(kind_named("supervised")) as view:
        predictor.fit(table, tuning, time_limit, callback=view, overrides=tuple(set_ or ()))
    summary = predictor.fit_summary()
    types = ", ".join(f"{c}: {t}" for c, t in summary["column_types"].items())
    inputs = ", ".join(f"{k} ({v})" for k, v in summary["inputs"].items())
    assert predictor.result is not None
    lines([f"columns: {types}", f"inputs: {inputs}; fusion {summary['fusion']}; preset {presets}"])
    lines([*kind_named("supervised").summary(predictor.result), f"run directory: {predictor.run_dir}"])
