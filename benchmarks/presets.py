"""Each preset (fast, medium, best) of `polymodal.Predictor` fitted on the shared datasets' tables, scored on
their held-out rows: one Markdown row per (dataset, preset), and with --single one per input column fitted alone.

    python benchmarks/presets.py --datasets basicmotions,japanesevowels --presets fast,medium,best
    python benchmarks/presets.py --datasets clipart --presets best --single
    python benchmarks/presets.py --datasets clipart --presets best --single keywords --seed 1 [--no-fused]

A dataset's own split column gives the test rows when it has one (UEA's official split); otherwise a seeded 20 %,
drawn per group when the dataset groups its rows (clipart: one drawing filed under several categories stays on
one side). Each fit runs with the preset's own settings (no overrides) and one thread.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import polymodal
from polymodal.registry import DATASETS

RESTATE = {"fsdd": ("word",)}  # per dataset: columns that are the label in other words


def table(name: str) -> tuple[pd.DataFrame, pd.DataFrame, str, str | None]:
    """(train rows, test rows, label, group column or None) of a built-in dataset, file paths made absolute."""
    entry = DATASETS.get(name)
    t = entry.factory(**dataclasses.asdict(entry.config())).load()
    frame = t.frame.copy()
    for column in frame.columns:
        if t.base_dir is not None and frame[column].map(lambda v: isinstance(v, str) and "/" in v).all():
            frame[column] = [str(t.base_dir / v) for v in frame[column]]
    split = t.split if t.split else None
    if split:
        test = frame[split] == "test"
        frame = frame.drop(columns=[split])
    elif t.group:
        groups = frame[t.group].unique()
        held = set(groups[np.random.default_rng(0).random(len(groups)) < 0.2])
        test = frame[t.group].isin(held).to_numpy()
    else:
        test = np.random.default_rng(0).random(len(frame)) < 0.2
    # Left out: bookkeeping columns, and columns that restate the label (fsdd's `word` is the digit). The group
    # column stays, as the Predictor's group_column (its validation rows then share no drawing with training).
    drop = {"speaker", "index", "title", "description", *RESTATE.get(name, ())} - {t.group}
    keep = [c for c in frame.columns if c not in drop]
    train, held = frame[~test][keep].reset_index(drop=True), frame[test][keep].reset_index(drop=True)
    return train, held, t.label, t.group


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="basicmotions,japanesevowels")
    ap.add_argument("--presets", default="fast,medium,best")
    ap.add_argument(
        "--single", nargs="?", const="all", default="", help="also fit each input column alone (or only COL,COL)"
    )
    ap.add_argument("--no-fused", action="store_true", help="with --single: fit only the single-column models")
    ap.add_argument("--seed", type=int, default=0, help="the recipe's seed (split of val rows, initialisation)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="key=value on the inferred recipe")
    ap.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="presets-")))
    args = ap.parse_args()
    print("| dataset | preset | inputs | test accuracy | train s |\n|---|---|---|---|---|", flush=True)
    for name in args.datasets.split(","):
        train, test, label, group = table(name)
        columns = [c for c in train.columns if c not in (label, group)]
        for preset in args.presets.split(","):
            alone = columns if args.single == "all" else [c for c in args.single.split(",") if c]
            singles = [[c] for c in alone] if len(columns) > 1 else []
            for keep in [*([] if args.no_fused and singles else [columns]), *singles]:
                tag = f"{name}-{preset}" + ("" if keep == columns else f"-{keep[0]}")
                t0 = time.perf_counter()
                p = polymodal.Predictor(label=label, presets=preset, path=args.out / tag, group_column=group)
                rows = train[[*keep, label, *([group] if group else [])]]
                p.fit(rows, overrides=("trainer.threads=1", f"seed={args.seed}", *args.overrides))
                accuracy = float((p.predict(test) == test[label].astype(str).to_numpy()).mean())
                inputs = ", ".join(f"{k}: {v}" for k, v in p.fit_summary()["inputs"].items())
                seconds = time.perf_counter() - t0
                print(f"| {name} | {preset} | {inputs} | {accuracy:.4f} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
