"""Fine-tuning from a pretrained encoder vs training from scratch, on the same split with few labels.

    python benchmarks/label_fraction.py recipes/mnist_labels10.yaml --seeds 0 1 --out runs/labels10_mnist

Each seed trains the recipe twice — as written (``init_from`` a pretraining run) and with ``init_from: null``
— with the same split (the recipe's ``data.split_seed``), the same labelled subset and the same shuffling;
prints a Markdown table of test accuracy and macro F1 and writes it to ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from polymodal import api


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", default="runs/label_fraction")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="key=value, as the CLI's --set")
    args = parser.parse_args()
    out = Path(args.out)
    rows = []
    for seed in args.seeds:
        for variant, extra in (("scratch", ["init_from=null"]), ("pretrained", [])):
            recipe = api.load_recipe(args.recipe, (*args.overrides, f"seed={seed}", *extra))
            res = api.train(recipe, out / f"{variant}-seed{seed}")
            rows.append(
                {
                    "variant": variant,
                    "seed": seed,
                    "accuracy": res.test["accuracy"],
                    "macro_f1": res.test["macro_f1"],
                    "train_rows": len(res.data.splits["train"]) if res.data else None,
                    "best_epoch": res.best_epoch,
                    "seconds": round(res.seconds, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    print("\n| model | seed | train labels | test accuracy | macro F1 | best epoch | train s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['seed']} | {r['train_rows']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} "
            f"| {r['best_epoch']} | {r['seconds']} |"
        )
    for variant in ("scratch", "pretrained"):
        accs = [r["accuracy"] for r in rows if r["variant"] == variant]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(f"{variant}: mean test accuracy {statistics.mean(accs):.4f} ± {sd:.4f} over {len(accs)} seeds")


if __name__ == "__main__":
    main()
