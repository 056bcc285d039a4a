"""Centralised training against FedAvg at several Dirichlet alphas, at the same number of passes over the data.

    python benchmarks/federated.py avdigits --clients 10 --alphas 0.1,1.0 --out benchmark/federated

The centralised run trains ``trainer.epochs`` epochs; each FedAvg run has ``rounds = epochs`` rounds in
which every client (fraction 1) trains one local epoch, so both see every training example ``epochs``
times. Prints a Markdown table and writes it to OUT/federated.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from polymodal import api


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--alphas", default="0.1,1.0", help="comma list of Dirichlet concentrations")
    ap.add_argument("--out", type=Path, default=Path("benchmark/federated"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override key=value")
    args = ap.parse_args()
    base = api.load_recipe(args.recipe, tuple(args.overrides))
    epochs = base.trainer.epochs
    rows = []
    for i, alpha in enumerate([None, *(float(a) for a in args.alphas.split(","))]):
        run = args.out / f"run{i}"
        if not (run / "metrics.json").is_file():  # rerunning skips finished runs
            if alpha is None:
                api.train(api.load_recipe(args.recipe, tuple(args.overrides)), run)
            else:
                fed = [
                    "kind=federated",
                    f"federated={{clients: {args.clients}, alpha: {alpha}, rounds: {epochs}, local_epochs: 1}}",
                ]
                api.train(api.load_recipe(args.recipe, tuple(args.overrides + fed)), run)
        record = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        if alpha is None:
            label, best = f"centralised, {epochs} epochs", f"epoch {record['best_epoch']}"
        else:
            sizes = record["federated"]["client_sizes"]
            label = f"FedAvg, {args.clients} clients, α = {alpha:g} (shards {min(sizes)}–{max(sizes)})"
            best = f"round {record.get('best_epoch', record.get('best_round'))}"
        rows.append(
            f"| {label} | {record['test']['accuracy']:.4f} | {record['test']['macro_f1']:.4f} | {best} | "
            f"{record['train_seconds']:.0f} |"
        )
        print(rows[-1], flush=True)
    table = "\n".join(["| training | test accuracy | macro F1 | best | train s |", "|---|---|---|---|---|", *rows])
    (args.out / "federated.md").write_text(table + "\n", encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
