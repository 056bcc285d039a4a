"""Training throughput and accuracy: one process vs ``torchrun`` data parallel, same recipe and seed.

    python benchmarks/distributed.py [--recipe recipes/avdigits.yaml] [--out runs/bench-ddp] [--set key=value ...]
                                     [--only 0 --only 2]

Trains the recipe three times from the command line, each in a fresh run folder with the on-disk feature
cache off (so no run reads features another decoded): one process with 1 thread, one process with 2 threads,
and ``torchrun --nproc_per_node=2`` with 1 thread per process. Prints one row per setup: training-step
throughput (examples through a training step per second of step time on rank 0), the whole fit's wall time
(validation included), the epochs run and the test accuracy. ``trainer.patience`` is 0 so every setup trains
the same number of epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SETUPS = [  # (label, processes, threads per process)
    ("1 process × 1 thread", 1, 1),
    ("1 process × 2 threads", 1, 2),
    ("torchrun 2 processes × 1 thread", 2, 1),
]


def run(recipe: str, out: Path, procs: int, threads: int, sets: list[str]) -> dict:
    overrides = ["--set", "trainer.patience=0", "--set", "data.disk_cache=false", "--set", f"trainer.threads={threads}"]
    for s in sets:
        overrides += ["--set", s]
    launcher = [sys.executable] if procs == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launcher += [] if procs == 1 else [f"--nproc_per_node={procs}"]
    cmd = [*launcher, "-m", "polymodal", "train", recipe, "--run-dir", str(out), *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    m = json.loads((out / "metrics.json").read_text())
    return {
        "samples_per_s": m["train_samples"] / m["step_seconds"],
        "train_s": m["train_seconds"],
        "wall_s": wall,
        "epochs": m["epochs_run"],
        "accuracy": m["test"]["accuracy"],
        "macro_f1": m["test"].get("macro_f1", float("nan")),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="recipes/avdigits.yaml")
    ap.add_argument("--out", default="runs/bench-ddp")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--only", type=int, action="append", help="run only these setups (0, 1, 2; repeatable)")
    args = ap.parse_args()
    rows = []
    for i, (label, procs, threads) in enumerate(SETUPS):
        if args.only and i not in args.only:
            continue
        rows.append((label, run(args.recipe, Path(args.out) / f"setup-{i}", procs, threads, args.sets)))
        print(f"done: {label}", file=sys.stderr, flush=True)
    print(f"\n{args.recipe} {' '.join(args.sets)}\n")
    print("| setup | train samples/s | fit s | wall s | epochs | test accuracy | macro F1 |")
    print("|---|---|---|---|---|---|---|")
    for label, r in rows:
        print(
            f"| {label} | {r['samples_per_s']:.0f} | {r['train_s']:.1f} | {r['wall_s']:.1f} | {r['epochs']} "
            f"| {r['accuracy']:.4f} | {r['macro_f1']:.4f} |"
        )


if __name__ == "__main__":
    main()
