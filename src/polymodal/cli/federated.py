"""``polymodal federated``: train a supervised recipe by FedAvg over simulated non-IID clients."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from polymodal.cli.render import ProgressView, kind_named, lines, setup_logging

HELP = """Simulate federated averaging (FedAvg) of a recipe over non-IID clients; test the global model.

The training split is divided over --clients by a Dirichlet(--alpha) label split; each round a --fraction
of the clients trains --local-epochs from the global weights and the server averages them. Options
override the recipe's `federated:` section. The run is a `kind: federated` run: `polymodal train --resume`
continues it, and predict, evaluate, export and serve work on it.

[b]Examples[/b]

  polymodal federated avdigits --clients 10 --alpha 0.1 --rounds 12 --run-dir runs/av-fed
  polymodal federated basicmotions --clients 4 --alpha 1.0 --local-epochs 2 --fraction 0.5
"""


def command(
    recipe: Annotated[str, typer.Argument(help="Recipe YAML path or built-in name.")],
    run_dir: Annotated[Path | None, typer.Option(help="Output folder (default runs/NAME-TIMESTAMP).")] = None,
    clients: Annotated[int | None, typer.Option(min=1, help="Number of clients K.")] = None,
    alpha: Annotated[float | None, typer.Option(help="Dirichlet concentration (0.1 very skewed, 100 ~IID).")] = None,
    rounds: Annotated[int | None, typer.Option(min=1, help="Communication rounds.")] = None,
    local_epochs: Annotated[int | None, typer.Option(min=1, help="Epochs each chosen client trains per round.")] = None,
    fraction: Annotated[float | None, typer.Option(help="Fraction of clients chosen per round.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe key: trainer.lr=0.01.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    from polymodal import api
    from polymodal.kinds.base import read_recipe

    setup_logging(verbose)
    given = {"clients": clients, "alpha": alpha, "rounds": rounds, "local_epochs": local_epochs, "fraction": fraction}
    overrides = [*(set_ or ()), *(f"federated.{k}={v}" for k, v in given.items() if v is not None)]
    parsed = read_recipe(recipe, overrides, kind="federated")
    kind = kind_named("federated")
    with ProgressView(kind) as view:
        res = api.train(parsed, run_dir, callback=view)
    lines([*kind.summary(res), f"run directory: {res.run_dir}"])
