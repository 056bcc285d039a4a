"""``polymodal predict``: one example through a finished supervised (or federated) run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from polymodal import api
from polymodal.cli.render import out
from polymodal.errors import PolymodalError

HELP = """Predict one example with a finished run; pass each input as --NAME VALUE.

[b]Example[/b]

  polymodal predict runs/av --image digit.png --audio seven.wav
"""

SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def values_of(args: list[str]) -> dict[str, str]:
    """``--image x.png --audio=y.wav`` -> ``{"image": "x.png", "audio": "y.wav"}``."""
    values: dict[str, str] = {}
    args = list(args)
    while args:
        flag = args.pop(0)
        if not flag.startswith("--") or ("=" not in flag and not args):
            raise PolymodalError(f"expected --INPUT VALUE pairs, got '{flag}'; e.g. --image x.png --audio y.wav")
        key, sep, inline = flag[2:].partition("=")
        values[key] = inline if sep else args.pop(0)
    return values


def command(
    ctx: typer.Context,
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    res = api.load(run_dir, "predict").predict(**values_of(ctx.args))
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
