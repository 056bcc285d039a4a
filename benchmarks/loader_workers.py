"""Training with batches loaded by 0, 1, 2 ... worker processes (``data.num_workers``), interleaved A, B, A, B.

    python benchmarks/loader_workers.py fsdd_digits --workers 0,1,2 --repeats 2 --epochs 2

By default the recipe gets FSDD's waveform augmentation (speed 0.1, gain 6 dB, shift 0.05 s, noise 0.5), so every
epoch recomputes each training example's STFT and mel features: the case ``num_workers: auto`` starts workers for.
Each measurement is a fresh ``polymodal train`` process on one shared, already-filled feature cache (the first
pass over the files is not what is timed), reading ``step_seconds`` (time inside training steps, fetching their
batches included) and ``train_seconds`` from the run's metrics.json. The loss curves of all worker counts are
printed too: they must be identical (each row's augmentation comes from its own seed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

AUGMENT = {"speed": 0.1, "gain_db": 6, "shift": 0.05, "noise": 0.5, "trim_db": 30}


def train(recipe: str, workers: str, epochs: int, run: Path, env: dict[str, str], augment: bool) -> dict:
    sets = [f"data.num_workers={workers}", f"trainer.epochs={epochs}", "trainer.patience=0"]
    if augment:
        sets += [f"inputs.audio.preprocessing.{k}={v}" for k, v in AUGMENT.items()]
    cmd = [sys.executable, "-m", "polymodal", "train", recipe, "--run-dir", str(run)]
    for s in sets:
        cmd += ["--set", s]
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    record = json.loads((run / "metrics.json").read_text())
    losses = [json.loads(line)["train_loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {"step": record["step_seconds"], "train": record["train_seconds"], "losses": losses}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe", nargs="?", default="fsdd_digits")
    ap.add_argument("--workers", default="0,1,2")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--no-augment", action="store_true", help="train the recipe as it is")
    args = ap.parse_args()
    counts = args.workers.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "POLYMODAL_CACHE": str(Path(tmp) / "cache")}
        train(args.recipe, "0", 1, Path(tmp) / "warm", env, not args.no_augment)  # fills the feature cache
        times: dict[str, list[dict]] = {w: [] for w in counts}
        for r in range(args.repeats):
            for w in counts:
                out = train(args.recipe, w, args.epochs, Path(tmp) / f"w{w}-{r}", env, not args.no_augment)
                times[w].append(out)
                print(f"workers {w}: steps {out['step']:.1f} s, run {out['train']:.1f} s", flush=True)
    base = statistics.median(t["step"] for t in times[counts[0]])
    print(f"\n| num_workers | median s in steps ({args.epochs} epochs) | median train s | speed-up (steps) |")
    print("|---|---|---|---|")
    for w, ts in times.items():
        step = statistics.median(t["step"] for t in ts)
        print(f"| {w} | {step:.1f} | {statistics.median(t['train'] for t in ts):.1f} | {base / step:.2f}× |")
    curves = {w: ts[0]["losses"] for w, ts in times.items()}
    same = len({json.dumps(c) for c in curves.values()}) == 1
    print(f"\ntrain loss per epoch, identical for every worker count: {same}  {curves[counts[0]]}")


if __name__ == "__main__":
    main()
