"""First pass over a recipe's data (building the table, decoding + features into an empty feature cache): one process
against a pool, or the code of an earlier checkout against this one; interleaved A, B, A, B so machine load hits
both alike.

    python benchmarks/data_prep.py fsdd_digits --workers 1,2 --repeats 2
    python benchmarks/data_prep.py avdigits_hard --before /path/to/earlier/checkout/src --repeats 2

Each measurement is a fresh Python process with an empty ``POLYMODAL_CACHE`` (so built-in datasets that generate
files, such as video_digits, generate them again), timing ``build_data``: the dataset's own preparation (AV-Digits'
degraded recordings, video_digits' MP4s), reading the table, splitting, fitting the transforms, the parallel
first pass and the screening pass every run does. ``--workers 1`` is what every run did before
``data.prepare_workers`` existed; ``--before SRC`` runs the package found in SRC (e.g. ``git worktree add
/tmp/before HEAD~5`` then ``/tmp/before/src``) with its defaults against this checkout's, both with their default
workers. Both arms read the data folder this checkout finds (``POLYMODAL_DATA``, unless set), and the run stops if
they build different tables (a checkout that finds no FSDD WAVs would fall back to MFCCs and time other work).
Each line also gives the CPU seconds of the process and its pool and the load average: on a shared machine the
wall time swings with the other jobs.
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

CHILD = """
import json, resource, sys, time
from polymodal import api
from polymodal.data.dataset import build_data
def cpu():  # this process and its reaped pool processes
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)
sets = (f"data.prepare_workers={sys.argv[2]}",) if sys.argv[2] != "default" else ()
recipe = api.load_recipe(sys.argv[1], sets)
t, c = time.perf_counter(), cpu()
bundle = build_data(recipe)
rows = sum(len(v) for v in bundle.splits.values())
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": cpu() - c, "rows": rows, "source": bundle.source}))
"""
HERE = Path(__file__).resolve().parents[1] / "src"


def data_env() -> dict[str, str]:
    """``POLYMODAL_DATA`` for both arms: the folder this checkout finds, so that a checkout elsewhere (whose
    ``../shared/data`` does not exist) reads the same files instead of falling back to another form of the data."""
    if os.environ.get("POLYMODAL_DATA"):
        return {}
    sys.path.insert(0, str(HERE))
    from polymodal.data.datasets.common import data_roots

    roots = data_roots()
    return {"POLYMODAL_DATA": str(roots[0])} if roots else {}


def measure(recipe: str, workers: str, src: Path) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, **data_env(), "POLYMODAL_CACHE": cache, "PYTHONPATH": str(src)}
        out = subprocess.run(
            [sys.executable, "-c", CHILD, recipe, workers], env=env, capture_output=True, text=True, check=True
        )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["source"] = result["source"].replace(cache, "$POLYMODAL_CACHE")  # video_digits writes its MP4s there
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe", help="recipe path or built-in name, e.g. fsdd_digits")
    ap.add_argument("--workers", default="1,2", help="prepare_workers values to compare (this checkout)")
    ap.add_argument("--before", type=Path, help="an earlier checkout's src folder: compare it with this one")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    if args.before:
        before = (args.before.resolve(), "default")
        arms = {f"before ({args.before})": before, "after (this checkout)": (HERE, "default")}
    else:
        arms = {f"workers {w}": (HERE, w) for w in args.workers.split(",")}
    times: dict[str, list[float]] = {a: [] for a in arms}
    cpus: dict[str, list[float]] = {a: [] for a in arms}
    built: set[tuple[int, str]] = set()
    for _ in range(args.repeats):
        for arm, (src, workers) in arms.items():
            result = measure(args.recipe, workers, src)
            times[arm].append(result["seconds"])
            cpus[arm].append(result["cpu"])
            built.add((result["rows"], result["source"]))
            load = os.getloadavg()[0]
            print(f"{arm}: {result['seconds']:.1f} s ({result['cpu']:.1f} CPU s, load {load:.1f})", flush=True)
            if len(built) > 1:
                sys.exit(f"the arms built different data ({sorted(built)}); point POLYMODAL_DATA at one data folder")
    rows, source = built.pop()
    base = statistics.median(times[next(iter(times))])
    print(f"\n{args.recipe}, {rows} rows ({source})\n")
    print("| | median s | median CPU s | rows/s | speed-up |\n|---|---|---|---|---|")
    for arm, ts in times.items():
        m = statistics.median(ts)
        print(f"| {arm} | {m:.1f} | {statistics.median(cpus[arm]):.1f} | {rows / m:.0f} | {base / m:.2f}× |")


if __name__ == "__main__":
    main()
