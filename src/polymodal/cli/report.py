"""``polymodal report``: a finished run's self-contained HTML evaluation report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from polymodal.cli.evaluate import DataOption
from polymodal.cli.render import out, setup_logging

HELP = """Write a run's self-contained HTML evaluation report: learning curves, confusion matrix, ROC
curves, per-class scores, head-specific metrics or generated text, attention maps, per-modality contribution
(masking and gradient × input saliency) and the fusion benchmark if one exists; for other kinds of run, their
own figures (a GAN's sample grids, a language model's samples, a pretraining objective's metrics).

[b]Examples[/b]

  polymodal report runs/av                                  [dim]# writes runs/av/report.html[/]
  polymodal report runs/av --benchmark benchmark/avdigits_hard --split val
  polymodal report runs/av --data new_rows.csv              [dim]# writes runs/av/report-new_rows.html[/]
"""


def command(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    benchmark_dir: Annotated[
        Path | None, typer.Option("--benchmark", help="A `polymodal benchmark` folder to include.")
    ] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Output file (default RUN/report.html).")] = None,
    table: DataOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    from polymodal import api

    setup_logging(verbose)
    path = api.report(run_dir, split, benchmark_dir, out_file, table)
    out.print(f"report written: {path}", highlight=False)
