"""``polymodal train``: train a recipe of any kind (the embedded AV-Digits demo without one)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from polymodal.cli.render import ProgressView, lines, out, setup_logging
from polymodal.errors import PolymodalError

if TYPE_CHECKING:
    from polymodal.kinds.base import RunKind

HELP = """Train a recipe (YAML path or built-in name) of any kind. With no recipe: the embedded AV-Digits demo.

[b]Examples[/b]

  polymodal train                                  [dim]# AV-Digits: image-only, audio-only and fused[/]
  polymodal train recipes/avdigits.yaml --run-dir runs/av
  polymodal train recipes/avdigits.yaml --set trainer.epochs=3 --set fusion.name=late
  polymodal train recipes/shakespeare_char.yaml    [dim]# kind: lm, a GPT on tiny Shakespeare[/]
  polymodal train --resume --run-dir runs/av       [dim]# continue a killed run of any kind[/]
  torchrun --nproc_per_node=2 -m polymodal train recipes/avdigits.yaml --run-dir runs/av2   [dim]# 2 processes (DDP)[/]
"""


def comparison(rows: list[dict]) -> Table:
    table = Table(title=f"Test accuracy — {rows[-1]['data']}")
    for col in ("model", "test accuracy", "macro F1", "best epoch", "train s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        table.add_row(
            r["model"],
            f"{r['test_accuracy']:.4f}",
            f"{r['test_macro_f1']:.4f}",
            str(r["best_epoch"]),
            f"{r['train_seconds']:.1f}",
        )
    return table


def resumed_kind(run_dir: Path | None) -> RunKind | None:
    """The kind of the run to resume, for its progress lines (None when the folder says nothing yet)."""
    from polymodal.kinds.base import for_run
    from polymodal.runs import RunDir

    try:
        return for_run(RunDir(run_dir)) if run_dir is not None else None
    except PolymodalError:
        return None  # api.train gives the one-line error


def command(
    recipe: Annotated[str | None, typer.Argument(help="Recipe YAML path or built-in name.")] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Output folder (default runs/NAME-TIMESTAMP).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --run-dir from its last checkpoint.")] = False,
    compare: Annotated[
        bool | None,
        typer.Option(help="Also train each input alone and print a table (default: on for the embedded demo)."),
    ] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe key: trainer.epochs=3.")] = None,
    tensorboard: Annotated[
        bool, typer.Option("--tensorboard", help="Log scalars to RUN/tb (same as --set trainer.tensorboard=true).")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    from polymodal import api
    from polymodal.kinds.base import for_recipe, for_run
    from polymodal.runs import RunDir
    from polymodal.training import distributed

    setup_logging(verbose)
    overrides = [*(set_ or []), *(["trainer.tensorboard=true"] if tensorboard else [])]
    main_rank = distributed.is_main_process()  # under torchrun only rank 0 logs, draws progress and prints
    if not main_rank:
        import logging

        logging.getLogger().setLevel(logging.ERROR)
    if resume and (recipe is not None or overrides):
        raise PolymodalError("--resume continues the run's own recipe: drop the recipe and --set, keep --run-dir")
    demo = recipe is None and not resume
    compare = demo if compare is None else compare
    parsed = None if resume else api.load_recipe("avdigits" if recipe is None else recipe, overrides)
    kind = resumed_kind(run_dir) if parsed is None else for_recipe(parsed)
    rows, res = None, None
    with ProgressView(kind) if main_rank else contextlib.nullcontext() as view:
        if resume:
            res = api.train(None, run_dir, resume=True, callback=view)
        elif compare:
            rows = api.compare_modalities(parsed, run_dir, callback=view)
        else:
            res = api.train(parsed, run_dir, callback=view)
    if not main_rank:
        distributed.finish()
    if rows is not None:
        out.print(comparison(rows))
        lines([f"run directory: {rows[-1]['run_dir']}"])
        skipped = rows[-1]["skipped_rows"]
    else:
        assert res is not None
        lines([*for_run(RunDir(res.run_dir)).summary(res), f"run directory: {res.run_dir}"])
        skipped = res.skipped
    if skipped:
        out.print(f"[yellow]skipped {skipped} unreadable rows[/] (data.on_error: skip); list in skipped.json")
    distributed.finish()
