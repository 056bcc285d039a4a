"""``polymodal export``: a finished run's model as ONNX, optionally pruned and int8-quantised, measured."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from polymodal.cli.render import out

HELP = """Export a finished run's model to ONNX (+ a sidecar JSON); optionally prune and/or int8-quantise it.

Prints and writes (next to the output) size, batch-1 latency and test accuracy of each step, and the largest
difference between the ONNX and PyTorch logits.

[b]Examples[/b]

  polymodal export runs/av --format onnx                       [dim]# runs/av/export/model.onnx + model.json[/]
  polymodal export runs/av --quantize int8 --out av-int8.onnx  [dim]# dynamic int8 (MatMul/Gemm)[/]
  polymodal export runs/av --prune 0.5                         [dim]# zero the 50 % smallest weights first[/]
"""


def command(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    format_: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    out_file: Annotated[Path | None, typer.Option("--out", help="Output file (default RUN/export/).")] = None,
    quantize: Annotated[str | None, typer.Option(help="int8: dynamic int8 quantisation.")] = None,
    prune: Annotated[float | None, typer.Option(help="Zero this fraction (0-1) of weights, global L1.")] = None,
    evaluate_: Annotated[
        bool, typer.Option("--eval/--no-eval", help="Measure accuracy and parity on the run's test split.")
    ] = True,
    threads: Annotated[int, typer.Option(min=1, help="Threads while measuring latency.")] = 1,
    repeats: Annotated[int, typer.Option(min=1, help="Timed batch-1 calls per variant.")] = 100,
) -> None:
    from polymodal import api

    rep = api.export(run_dir, format_, out_file, quantize, prune, evaluate=evaluate_, threads=threads, repeats=repeats)
    where = f"the {rep.split} split" if rep.split else "placeholder inputs (--no-eval)"
    t = Table(title=f"Export of {run_dir} — accuracy on {where}; latency batch 1, {threads} thread(s)")
    for col in ("variant", "size KB", "zlib KB", "latency ms", "accuracy", "Δ accuracy", "zero weights"):
        t.add_column(col, justify="left" if col == "variant" else "right")
    first = rep.rows[0].get("accuracy")
    for r in rep.rows:
        acc = r.get("accuracy")
        t.add_row(
            r["variant"],
            f"{r['size_bytes'] / 1024:.1f}",
            f"{r['compressed_bytes'] / 1024:.1f}",
            f"{r['latency_ms']:.3f}",
            "–" if acc is None else f"{acc:.4f}",
            "–" if acc is None or first is None else f"{acc - first:+.4f}",
            "–" if r.get("sparsity") is None else f"{100 * r['sparsity']:.1f} %",
        )
    out.print(t)
    p = rep.parity
    colour = "green" if p["ok"] else "red"
    out.print(
        f"ONNX vs PyTorch: max |Δ logit| [{colour}]{p['max_abs_diff']:.2e}[/] over {p['examples']} examples "
        f"(tolerance {p['tolerance']:g})"
    )
    out.print(f"written: {rep.out}, {rep.sidecar.name}, {rep.report_path.name}")
