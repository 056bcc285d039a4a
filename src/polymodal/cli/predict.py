"""``polymodal predict``: one example through a finished supervised (or federated) run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.progress import Progress, TextColumn
from rich.table import Table

from polymodal.cli.render import err, out
from polymodal.errors import PolymodalError

HELP = """Predict one example with a finished run, passing each input as --NAME VALUE (a tabular or series input
as JSON); or every row of a table with --data, written to --out (one row per input row: the label and each
class's probability), streamed in chunks.

[b]Examples[/b]

  polymodal predict runs/av --image digit.png --audio seven.wav
  polymodal predict runs/av --data new_rows.csv --out predictions.csv --on-error skip
  polymodal predict runs/motion --sensors '[[0.1, 0.2], [0.3, 0.1]]'
"""

SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def table(predictor: Any, data: Path, out_file: Path, on_error: str) -> None:
    """Every row of ``data`` into ``out_file``, with a progress line; bad rows reported one line each."""
    from polymodal.kinds.supervised.batch import predict_table

    columns = (TextColumn("{task.description}"), TextColumn("{task.fields[info]}"))
    with Progress(*columns, console=err, transient=True) as bar:  # gone when done: errors stay one line
        task = bar.add_task(f"predicting {data.name}", info="")

        def show(event: str, **info: Any) -> None:
            bar.update(task, info=f"{info['done']:,} rows read, {info['written']:,} written, {info['skipped']} skipped")

        path, skipped = predict_table(predictor, data, out_file, on_error, callback=show)
    for bad in skipped:
        err.print(f"[yellow]skipped row {bad['row']}[/]: {bad['error']}", highlight=False, soft_wrap=True)
    out.print(f"wrote {path} ({len(skipped)} row(s) skipped)", highlight=False)


def values_of(args: list[str], modalities: dict[str, str]) -> dict[str, Any]:
    """``--image x.png --audio=y.wav`` -> ``{"image": "x.png", "audio": "y.wav"}``; a tabular input's value is a
    JSON object of its columns, a series input's a JSON list of steps (rows of channels)."""
    values: dict[str, Any] = {}
    args = list(args)
    while args:
        flag = args.pop(0)
        if not flag.startswith("--") or ("=" not in flag and not args):
            raise PolymodalError(f"expected --INPUT VALUE pairs, got '{flag}'; e.g. --image x.png --audio y.wav")
        key, sep, inline = flag[2:].partition("=")
        text = inline if sep else args.pop(0)
        if modalities.get(key) in ("tabular", "timeseries"):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                raise PolymodalError(
                    f"--{key}: a {modalities[key]} input is JSON, e.g. --{key} "
                    + (
                        '\'{"age": 41, "city": "Lyon"}\''
                        if modalities[key] == "tabular"
                        else "'[[0.1, 0.2], [0.3, 0.1]]'"
                    )
                ) from None
            values[key] = np.asarray(parsed, dtype=np.float32) if modalities[key] == "timeseries" else parsed
        else:
            values[key] = text
    return values


def command(
    ctx: typer.Context,
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    data: Annotated[Path | None, typer.Option(help="Predict every row of this CSV/TSV/Parquet/JSONL table.")] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="With --data: the predictions (.csv .tsv .jsonl .parquet).")
    ] = None,
    on_error: Annotated[
        str, typer.Option(help="With --data: raise (stop at a bad row) or skip (report it).")
    ] = "raise",
    device: Annotated[
        str | None,
        typer.Option(help="Where the model runs: auto, cpu, cuda, cuda:N or mps (default: the run's trainer.device)."),
    ] = None,
) -> None:
    from polymodal import api

    predictor = api.load(run_dir, "predict", device)
    if data is not None:
        if out_file is None or ctx.args:
            raise PolymodalError("--data writes to a file: give --out predictions.csv (and no --INPUT values)")
        table(predictor, data, out_file, on_error)
        return
    if out_file is not None:
        raise PolymodalError("--out is for --data TABLE; for one example the result is printed")
    res = predictor.predict(**values_of(ctx.args, predictor.inputs))
    if as_json:
        out.print_json(json.dumps(res))
        return
    if res.get("missing"):
        out.print(f"[yellow]missing input(s): {', '.join(res['missing'])}[/] (predicted from the others)")
    if "text" in res:  # a caption head writes text
        out.print(f"text: {res['text']}", markup=False, highlight=False)
        return
    if "label" not in res and "labels" not in res:  # multi-task: one block per task
        out.print_json(json.dumps({k: v for k, v in res.items() if k != "missing"}))
        return
    if "labels" in res:
        out.print(f"labels: [bold]{', '.join(res['labels']) or '(none)'}[/]")
    else:
        out.print(f"label: [bold]{res['label']}[/]")
    t = Table(show_header=True)
    t.add_column("class")
    t.add_column("probability", justify="right")
    for c, p in sorted(res["probabilities"].items(), key=lambda kv: -kv[1]):
        t.add_row(c, f"{p:.4f}")
    out.print(t)
