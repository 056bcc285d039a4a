"""Each preset (fast, medium, best) of `polymodal.Predictor` fitted on the shared datasets' tables, scored on
their held-out rows: one Markdown row per (dataset, preset), and the best single column of each dataset.

    python benchmarks/presets.py --datasets basicmotions,japanesevowels --presets fast,medium,best

A dataset's own split column gives the test rows when it has one (UEA's official split); otherwise a seeded 20 %.
Each fit runs with the preset's own settings (no overrides) and one thread.
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


def table(name: str) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(train rows, test rows, label) of a built-in dataset, with file paths made absolute."""
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
    else:
        test = np.random.default_rng(0).random(len(frame)) < 0.2
    # Left out: grouping and bookkeeping columns, and columns that restate the label (fsdd's `word` is the digit).
    drop = {"drawing", "speaker", "index", "title", "description", *RESTATE.get(name, ())}
    keep = [c for c in frame.columns if c not in drop]
    return frame[~test][keep].reset_index(drop=True), frame[test][keep].reset_index(drop=True), t.label


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="basicmotions,japanesevowels")
    ap.add_argument("--presets", default="fast,medium,best")
    ap.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="presets-")))
    args = ap.parse_args()
    print("| dataset | preset | inputs | test accuracy | train s |\n|---|---|---|---|---|", flush=True)
    for name in args.datasets.split(","):
        train, test, label = table(name)
        for preset in args.presets.split(","):
            t0 = time.perf_counter()
            p = polymodal.Predictor(label=label, presets=preset, path=args.out / f"{name}-{preset}")
            p.fit(train, overrides=("trainer.threads=1",))
            accuracy = float((p.predict(test) == test[label].astype(str).to_numpy()).mean())
            inputs = ", ".join(f"{k}: {v}" for k, v in p.fit_summary()["inputs"].items())
            print(f"| {name} | {preset} | {inputs} | {accuracy:.4f} | {time.perf_counter() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
