"""Leave-one-speaker-out accuracy on FSDD: how well a recipe recognises a speaker it never heard.

    python benchmarks/loso.py src/polymodal/recipes/fsdd_digits.yaml --out runs/loso --set trainer.threads=1

Trains the recipe once per FSDD speaker with ``data.options.test_speaker`` set to that speaker: the other five
speakers' recordings are the training rows, ``data.val_fraction`` of them (stratified by digit) the validation
rows that early stopping watches, so nothing about the held-out speaker steers training. Prints one JSON line per
run, then a Markdown table (speaker, test accuracy, macro F1, best epoch, seconds) and the mean, and writes the
rows to ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from polymodal import api
from polymodal.data.datasets.fsdd import SPEAKERS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--speakers", nargs="+", default=list(SPEAKERS), help="speakers to hold out, one run each")
    parser.add_argument("--out", default="runs/loso")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="key=value, as the CLI's --set")
    args = parser.parse_args()
    out = Path(args.out)
    rows = []
    for speaker in args.speakers:
        recipe = api.load_recipe(args.recipe, (*args.overrides, f"data.options.test_speaker={speaker}"))
        res = api.train(recipe, out / speaker)
        rows.append(
            {
                "speaker": speaker,
                "accuracy": res.test["accuracy"],
                "macro_f1": res.test["macro_f1"],
                "test_rows": len(res.data.splits["test"]) if res.data else None,
                "best_epoch": res.best_epoch,
                "seconds": round(res.seconds, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"overrides": args.overrides, "rows": rows}, indent=2))
    print("\n| held-out speaker | test rows | test accuracy | macro F1 | best epoch | train s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['speaker']} | {r['test_rows']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['best_epoch']} "
            f"| {r['seconds']} |"
        )
    accs = [r["accuracy"] for r in rows]
    sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
    print(f"\nmean test accuracy {statistics.mean(accs):.4f} ± {sd:.4f} over {len(accs)} held-out speakers")


if __name__ == "__main__":
    main()
