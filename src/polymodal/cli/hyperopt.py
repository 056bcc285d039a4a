"""``polymodal hyperopt``: an Optuna search over a supervised recipe's hyperparameters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from polymodal.cli.render import out, setup_logging

HELP = """Search hyperparameters with Optuna (TPE sampler, median pruning on the per-epoch validation metric).

Writes trials.csv, trials.md and best.yaml (the best trial's recipe, ready for `polymodal train`) to --out;
trial N trains in OUT/trials/trial-NNN. Without --space: lr, weight decay, batch size, head dropout, fusion.

[b]Examples[/b]

  polymodal hyperopt avdigits --trials 20 --timeout 3600 --out hyperopt/avdigits
  polymodal hyperopt basicmotions --trials 10 --space space.yaml --set trainer.epochs=20
  polymodal train hyperopt/avdigits/best.yaml
"""


def command(
    recipe: Annotated[str, typer.Argument(help="Recipe YAML path or built-in name.")],
    trials: Annotated[int, typer.Option(min=1, help="Number of trials at most.")] = 20,
    timeout: Annotated[float | None, typer.Option(min=1, help="Start no new trial after this many seconds.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder (default hyperopt/NAME).")] = None,
    space: Annotated[Path | None, typer.Option(help="Search-space YAML (recipe key: range or choices).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe key: trainer.epochs=3.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    from polymodal import api
    from polymodal import hyperopt as hp

    setup_logging(verbose)
    parsed_space = hp.load_space(space) if space is not None else None
    where = out_dir or Path("hyperopt") / api.load_recipe(recipe, set_ or ()).name

    def show(event: str, **info: Any) -> None:
        r = info["row"]
        value = "-" if r["value"] is None else f"{r['value']:.4f}"
        params = "  ".join(f"{k}={hp.fmt(v)}" for k, v in r["params"].items())
        out.print(f"trial {r['trial']}: {r['state']} {value} after {r['epochs']} epochs  {params}", highlight=False)

    res = hp.search(recipe, trials, where, timeout, parsed_space, list(set_ or ()), callback=show)
    out.print((where / "trials.md").read_text(encoding="utf-8"), markup=False, highlight=False, soft_wrap=True)
    if res.best is None:
        out.print("[yellow]no trial completed[/]; widen the search space or train longer")
    else:
        out.print(f"best: trial {res.best['trial']}, validation {res.best['value']:.4f}; train it with:")
        out.print(f"  polymodal train {res.best_recipe}", highlight=False)
    out.print(f"written: {', '.join(str(p) for p in res.files)}", highlight=False)
