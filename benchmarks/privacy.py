"""Accuracy against privacy: one recipe trained without DP and with DP-SGD at several target epsilons.

    python benchmarks/privacy.py avdigits_dp --epsilons 1,3,8 --out benchmark/privacy

Every run uses the same recipe (model, batch size, epochs, Poisson batches only under DP); the non-private
row sets ``trainer.privacy: null``. Prints a Markdown table and writes it to OUT/privacy.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from polymodal import api


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe")
    ap.add_argument("--epsilons", default="1,3,8", help="comma list of target epsilons")
    ap.add_argument("--out", type=Path, default=Path("benchmark/privacy"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override key=value")
    args = ap.parse_args()
    settings = [("non-private", ["trainer.privacy=null"])] + [
        (f"DP-SGD, target ε = {e}", [f"trainer.privacy.target_epsilon={e}", "trainer.privacy.noise_multiplier=null"])
        for e in args.epsilons.split(",")
    ]
    rows = []
    for i, (label, extra) in enumerate(settings):
        run = args.out / f"run{i}"
        if (run / "metrics.json").is_file():  # rerunning skips finished runs
            record = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        else:
            api.train(api.load_recipe(args.recipe, tuple(args.overrides + extra)), run)
            record = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        dp = record.get("privacy") or {}
        privacy = f"{dp['noise_multiplier']:.3f} | {dp['epsilon']:.2f}" if dp else "0 | ∞"
        rows.append(
            f"| {label} | {privacy} | {record['test']['accuracy']:.4f} | {record['test']['macro_f1']:.4f} | "
            f"{record['best_epoch']} | {record['train_seconds']:.0f} |"
        )
        print(rows[-1], flush=True)
    table = "\n".join(
        [
            "| training | noise multiplier σ | ε (δ = 1e-5) | test accuracy | macro F1 | best epoch | train s |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    (args.out / "privacy.md").write_text(table + "\n", encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
