"""``polymodal evaluate``: score a finished run of any kind and write its HTML report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from polymodal.cli.render import confusion, err, lines, out

HELP = """Evaluate a finished run on a split of its data and write its HTML report (RUN/report.html).

[b]Example[/b]

  polymodal evaluate runs/av --split test
  polymodal evaluate runs/av --data new_rows.csv   [dim]# every row of another manifest; report-new_rows.html[/]
  polymodal evaluate runs/shakespeare_char       [dim]# a language model: validation loss, perplexity, samples[/]
"""

DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Evaluate on every row of this CSV/Parquet/JSONL manifest (the run's input and label columns, "
        "paths relative to it) instead of a split of the run's own data (supervised runs).",
    ),
]


def command(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    report: Annotated[bool, typer.Option(help="Also write RUN/report.html.")] = True,
    benchmark_dir: Annotated[
        Path | None, typer.Option("--benchmark", help="A `polymodal benchmark` folder to include in the report.")
    ] = None,
    table: DataOption = None,
    device: Annotated[
        str | None,
        typer.Option(help="Where the model runs: auto, cpu, cuda, cuda:N or mps (default: the run's trainer.device)."),
    ] = None,
) -> None:
    from polymodal import api
    from polymodal.kinds.base import for_run
    from polymodal.runs import RunDir

    m = api.evaluate(run_dir, split, table, device)
    if m.get("skipped_rows"):
        err.print(f"[yellow]skipped {m['skipped_rows']} unreadable rows[/] (data.on_error: skip)")
    if as_json:
        out.print_json(json.dumps(m))
    else:
        kind = for_run(RunDir(run_dir))
        lines(kind.describe(m, str(m.get("split", split if kind.split == "test" else kind.split))))
        if "confusion_matrix" in m:
            out.print(confusion(m))
    if report:
        err.print(f"report: {api.report(run_dir, split, benchmark_dir, table=table)}", highlight=False)
