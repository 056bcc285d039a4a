"""First pass over a recipe's files (decoding + features into an empty feature cache), one process against a pool,
interleaved A, B, A, B so machine load hits both alike.

    python benchmarks/data_prep.py fsdd_digits --workers 1,2 --repeats 2

Each measurement is a fresh Python process with an empty ``POLYMODAL_CACHE``, timing ``build_data`` (reading
the table, splitting, fitting the transforms, the parallel first pass when workers > 1, and the screening pass
every run does); workers 1 is what every run did before ``data.prepare_workers`` existed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = """
import json, sys, time
from polymodal import api
from polymodal.data.dataset import build_data
recipe = api.load_recipe(sys.argv[1], (f"data.prepare_workers={sys.argv[2]}",))
t = time.perf_counter()
bundle = build_data(recipe)
rows = sum(len(v) for v in bundle.splits.values())
print(json.dumps({"seconds": time.perf_counter() - t, "rows": rows}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe", help="recipe path or built-in name, e.g. fsdd_digits")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    times: dict[str, list[float]] = {w: [] for w in args.workers.split(",")}
    rows = 0
    for _ in range(args.repeats):
        for w in times:
            with tempfile.TemporaryDirectory() as cache:
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, args.recipe, w],
                    env={**os.environ, "POLYMODAL_CACHE": cache},
                    capture_output=True,
                    text=True,
                    check=True,
                )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            times[w].append(result["seconds"])
            rows = result["rows"]
            print(f"workers {w}: {result['seconds']:.1f} s", flush=True)
    base = statistics.median(times[next(iter(times))])
    print("\n| workers | median s | rows/s | speed-up |\n|---|---|---|---|")
    for w, ts in times.items():
        m = statistics.median(ts)
        print(f"| {w} | {m:.1f} | {rows / m:.0f} | {base / m:.2f}× |")


if __name__ == "__main__":
    main()
