"""First pass over a table's files under ``torchrun --nproc_per_node=2``: every process decoding every file (the
code before rank sharding) against each process decoding its share (``data/shard_prepare.py``), side by side.

    python benchmarks/shard_prepare.py [--recipe recipes/fsdd_digits.yaml] --before /path/to/old/checkout/src
                                       [--repeat 2] [--procs 2]

Each setup runs ``torchrun --standalone`` with ``--procs`` processes that build the recipe's data (load, split,
fit, first pass, screening: everything before the first training step) into a fresh, empty feature cache and
report on rank 0: the first pass's time (``prefill`` / ``prefill_sharded`` until every process has finished it)
and CPU seconds (summed over the processes and their decoding pools: the work, which load on a shared machine
does not change), and the whole ``build_data``'s time (until every process has finished it). Setups alternate
(before, after, before, after, ...) so that load on a shared machine falls on both; the files' pages are read
once before timing starts. ``--before`` is the ``src`` folder of a checkout without sharding (e.g. the main
branch); without it only the current code runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
SRC = HERE.parent.parent / "src"


def worker(recipe: str) -> None:
    """One torchrun process: build the data, then rank 0 prints the seconds as JSON."""
    import torch.distributed as dist

    from polymodal.api import load_recipe
    from polymodal.data import dataset
    from polymodal.training import distributed

    d = distributed.from_env("cpu")
    first_pass: list[float] = []
    cpu_seconds: list[float] = []
    name = "prefill_sharded" if hasattr(dataset, "prefill_sharded") else "prefill"  # after / before sharding
    real = getattr(dataset, name)

    def cpu() -> float:  # this process's CPU seconds and its finished children's (the decoding pool)
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def timed(*args: object, **kwargs: object) -> int:  # the first pass, until every process has finished it
        t, c = time.perf_counter(), cpu()
        out = real(*args, **kwargs)
        used = cpu() - c
        d.barrier()
        first_pass.append(time.perf_counter() - t)
        cpu_seconds.extend(d.all_sum(used))  # over all processes: the work done, whatever else the box runs
        return out

    setattr(dataset, name, timed)
    d.barrier()
    t0 = time.perf_counter()
    data = dataset.build_data(load_recipe(recipe))
    d.barrier()
    seconds = time.perf_counter() - t0
    if d.is_main:
        rows = sum(len(s) for s in data.splits.values())
        report = {"seconds": seconds, "first_pass": sum(first_pass), "cpu": sum(cpu_seconds), "rows": rows}
        print(json.dumps(report), flush=True)
    dist.barrier()
    distributed.finish()


def run(src: Path, recipe: str, procs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="shard-bench-") as cache:
        env = {**os.environ, "PYTHONPATH": str(src), "POLYMODAL_CACHE": cache, "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"]
        cmd += [str(HERE), "--worker", "--recipe", recipe]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=1800).stdout
        wall = time.perf_counter() - t0
    return {**json.loads(out.strip().splitlines()[-1]), "wall": wall}


def warm_pages(recipe: str) -> int:
    """Read every file the recipe's table names once, so neither setup pays for the first disk read."""
    sys.path.insert(0, str(SRC))
    from polymodal.api import load_recipe
    from polymodal.data.dataset import load_table

    frame = load_table(load_recipe(recipe)).frame
    n = 0
    for column in frame.columns:
        for cell in frame[column]:
            if isinstance(cell, str) and os.path.isfile(cell):
                Path(cell).read_bytes()
                n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="recipes/fsdd_digits.yaml")
    ap.add_argument("--before", type=Path, help="src folder of a checkout without rank sharding")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.recipe)
    print(f"read {warm_pages(args.recipe)} files once", file=sys.stderr)
    setups = ([("before: every process decodes every file", args.before)] if args.before else []) + [
        ("after: each process decodes its share", SRC)
    ]
    results: dict[str, list[dict]] = {label: [] for label, _ in setups}
    for i in range(args.repeat):
        for label, src in setups:
            results[label].append(run(src, args.recipe, args.procs))
            print(f"round {i + 1}: {label}: {results[label][-1]}", file=sys.stderr, flush=True)
    print(f"\n{args.recipe}, torchrun --nproc_per_node={args.procs}, cold feature cache\n")
    print(
        "| setup | first pass s (each round) | mean | first pass CPU s, all processes | mean "
        "| build_data s (each round) | mean | launch-to-exit s (mean) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, rows in results.items():
        cells = []
        for key in ("first_pass", "cpu", "seconds"):
            cells += [", ".join(f"{r[key]:.1f}" for r in rows), f"{sum(r[key] for r in rows) / len(rows):.1f}"]
        wall = sum(r["wall"] for r in rows) / len(rows)
        print(f"| {label} | {' | '.join(cells)} | {wall:.1f} |")


if __name__ == "__main__":
    main()
