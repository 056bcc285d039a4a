"""polymodal's GPT against nanoGPT's shakespeare_char CPU run, side by side on this machine.

    python benchmarks/gpt_vs_nanogpt.py [--recipe recipes/shakespeare_char.yaml] [--threads 2] [--out DIR]

Runs, one after the other and each in a fresh process with the same thread count:
1. the peer, ``benchmarks/nanogpt_peer.py`` (nanoGPT's training loop and configuration re-implemented:
   nanoGPT is not on PyPI and cannot be fetched here);
2. ``polymodal train RECIPE``.
Both train on tiny Shakespeare with the same 90/10 character split. Reported per side: wall time of the
training loop (evaluations included) until its own periodic validation first reads ≤ 1.88, the total
training time, and — outside the timed part — the loss on every non-overlapping 64-character window of the
validation text, the same windows for both. Writes ``gpt_vs_nanogpt.json`` and a Markdown table to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from polymodal.kinds.lm.data import read_corpus
from polymodal.kinds.lm.run import LMRun

TARGET = 1.88
HERE = Path(__file__).resolve().parent


def first_below(points: list[tuple[float, float]], target: float) -> float | None:
    """Seconds of the first (seconds, val_loss) point at or below ``target``."""
    return next((s for s, v in points if v <= target), None)


def run(cmd: list[str], threads: int) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


@torch.no_grad()
def full_val_loss(run_dir: Path, text: str, block: int = 64) -> float:
    """polymodal's best weights scored on the peer's windows (the last 10% of the text, 64 characters)."""
    lm = LMRun(run_dir)
    model, tok = lm.model, lm.tokenizer
    val = torch.tensor(tok.encode(text[int(len(text) * 0.9) :]), dtype=torch.long)
    n = (len(val) - 1) // block
    x, y = val[: n * block].view(n, block), val[1 : n * block + 1].view(n, block)
    total = 0.0
    for i in range(0, n, 256):
        total += float(model(x[i : i + 256], y[i : i + 256])[1]) * len(x[i : i + 256])
    return total / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default=str(HERE.parent / "recipes" / "shakespeare_char.yaml"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmark/gpt_vs_nanogpt")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text, source = read_corpus("tinyshakespeare")
    load = os.getloadavg()[0]

    lines = [
        json.loads(ln)
        for ln in run(
            [sys.executable, str(HERE / "nanogpt_peer.py"), "--data", source, "--threads", str(args.threads)],
            args.threads,
        ).splitlines()
    ]
    evals = [ln for ln in lines if "iter" in ln]
    final = next(ln for ln in lines if ln.get("final"))
    peer = {
        "curve": [(e["seconds"], e["val"]) for e in evals],
        "seconds_to_target": first_below([(e["seconds"], e["val"]) for e in evals], TARGET),
        "train_seconds": final["seconds"],
        "last_val_estimate": evals[-1]["val"],
        "full_val_loss": final["full_val_loss"],
    }

    run_dir = out / "polymodal_run"
    t0 = time.perf_counter()
    run(
        [
            sys.executable,
            "-m",
            "polymodal",
            "train",
            args.recipe,
            "--run-dir",
            str(run_dir),
            "--set",
            f"trainer.threads={args.threads}",
        ],
        args.threads,
    )
    wall = time.perf_counter() - t0
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    ours = {
        "curve": [(r["seconds"], r["val_loss"]) for r in rows],
        "seconds_to_target": first_below([(r["seconds"], r["val_loss"]) for r in rows], TARGET),
        "train_seconds": rows[-1]["seconds"],
        "process_seconds": round(wall, 1),
        "last_val_estimate": rows[-1]["val_loss"],
        "full_val_loss": full_val_loss(run_dir, text),
    }
    result = {"threads": args.threads, "load_before": load, "recipe": args.recipe, "nanogpt": peer, "polymodal": ours}
    (out / "gpt_vs_nanogpt.json").write_text(json.dumps(result, indent=2))

    def fmt(v: float | None) -> str:
        return "not reached" if v is None else f"{v:.1f}"

    table = [
        f"tiny Shakespeare, char-level, {args.threads} threads, load average {load:.1f} at start",
        "",
        f"| | seconds to val ≤ {TARGET} | training seconds | last periodic val | val loss, all windows |",
        "|---|---|---|---|---|",
    ]
    for name, r in (("nanoGPT (peer)", peer), ("polymodal", ours)):
        table.append(
            f"| {name} | {fmt(r['seconds_to_target'])} | {r['train_seconds']:.1f} | "
            f"{r['last_val_estimate']:.4f} | {r['full_val_loss']:.4f} |"
        )
    if peer["seconds_to_target"] and ours["seconds_to_target"]:
        ratio = ours["seconds_to_target"] / peer["seconds_to_target"]
        table.append(f"\ntime to target, polymodal / nanoGPT: {ratio:.2f}")
    (out / "gpt_vs_nanogpt.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
