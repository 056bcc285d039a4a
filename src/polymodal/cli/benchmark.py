"""``polymodal benchmark``: every fusion (and each input alone) over several seeds, with tables and a plot."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from polymodal.cli.render import out, setup_logging
from polymodal.config import Recipe
from polymodal.errors import PolymodalError

HELP = """Train every fusion (and each input alone) over several seeds; write tables and a plot.

Writes benchmark.md, benchmark.csv, benchmark.json and robustness.png to --out. Each run trains in a fresh
process. Rerunning with the same --out skips finished runs.

[b]Examples[/b]

  polymodal benchmark avdigits_hard --fusions all --seeds 3 --out benchmarks/results/avdigits_hard
  polymodal benchmark basicmotions --fusions concat,late:combine=vote,tensor --seeds 2
"""


def command(
    recipe: Annotated[str, typer.Argument(help="Recipe YAML path or built-in name.")],
    fusions: Annotated[
        str, typer.Option(help="'all' or a comma list of fusion names, options as name:key=value.")
    ] = "all",
    seeds: Annotated[int, typer.Option(min=1, help="Seeds per model (recipe seed, +1, ...).")] = 3,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder (default benchmark/NAME).")] = None,
    unimodal: Annotated[bool, typer.Option(help="Also train each input alone.")] = True,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe key: trainer.epochs=3.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    from polymodal import api
    from polymodal import benchmark as bench

    setup_logging(verbose)
    parsed = api.load_recipe(recipe, set_ or ())
    if not isinstance(parsed, Recipe) or parsed.kind != "supervised":
        raise PolymodalError(f"benchmark compares the fusions of a supervised recipe; this one is kind: {parsed.kind}")
    where = out_dir or Path("benchmark") / parsed.name
    command = "polymodal " + " ".join(sys.argv[1:]) if sys.argv[1:] else f"polymodal benchmark {recipe}"

    def show(event: str, **info: Any) -> None:
        if event == "model_start":
            out.print(f"training {info['name']}")

    bench.benchmark(parsed, fusions, seeds, where, unimodal, command=command, callback=show)
    out.print((where / "benchmark.md").read_text(encoding="utf-8"), markup=False, highlight=False, soft_wrap=True)
    out.print(f"written: {where}/benchmark.md, benchmark.csv, benchmark.json, robustness.png")
