"""Ablations of recipes/shakespeare_char_fast.yaml: each change of the fast recipe undone (or one more added),
one training run per variant, each in a fresh process with one thread.

    python benchmarks/gpt_ablations.py [--variants full adamw learned ...] [--out DIR]

Per variant: the periodic validation losses (20 fixed batches, at steps 150/300/450), the loss of the kept
weights on every non-overlapping 64-character validation window, and the training seconds. Losses at a fixed
step count do not depend on the machine's load; seconds do (other jobs share the CPUs), so compare them only
within one run of this script and read per-step costs from benchmarks/gpt_vs_nanogpt.py's interleaved pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gpt_vs_nanogpt import windows  # noqa: E402
from nanogpt_real import full_val_loss  # noqa: E402

from polymodal.gpt.tokenizer import CharTokenizer  # noqa: E402
from polymodal.kinds.lm.data import read_corpus  # noqa: E402
from polymodal.kinds.lm.run import LMRun  # noqa: E402

RECIPE = HERE.parent / "recipes" / "shakespeare_char_fast.yaml"
VARIANTS: dict[str, list[str]] = {
    "full": [],
    "adamw": ["trainer.optimizer=adamw", "trainer.lr=0.005"],  # the old recipe's optimiser and lr
    "learned": ["model.positions=learned"],
    "no_qk_norm": ["model.qk_norm=false"],
    "no_softcap": ["model.logit_softcap=0"],
    "ns5": ["trainer.muon_ns_steps=5"],
    "lr5e-3": ["trainer.lr=0.005"],
    "relu2": ["model.mlp=relu2"],
    "untied": ["model.tie_weights=false"],
    "bf16": ["trainer.precision=bf16"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--out", default="benchmark/gpt_ablations")
    args = ap.parse_args()
    out = Path(args.out)
    text, _ = read_corpus("tinyshakespeare")
    cut = int(len(text) * 0.9)
    x, y = windows(CharTokenizer().fit(text[:cut]).encode(text[cut:]))
    lines = [
        f"load average at start {os.getloadavg()[0]:.1f}; 1 thread per run",
        "",
        "| variant | overrides | periodic val (steps 150/300/450) | val, all windows | training s |",
        "|---|---|---|---|---|",
    ]
    for name in args.variants:
        run_dir = out / name
        shutil.rmtree(run_dir, ignore_errors=True)
        cmd = [sys.executable, "-m", "polymodal", "train", str(RECIPE), "--run-dir", str(run_dir)]
        for o in ["trainer.threads=1", *VARIANTS[name]]:
            cmd += ["--set", o]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode:
            sys.exit(f"{name} failed:\n{done.stderr[-2000:]}")
        rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines() if ln.strip()]
        full = full_val_loss(LMRun(run_dir).model, x, y)
        curve = " / ".join(f"{r['val_loss']:.3f}" for r in rows)
        lines.append(
            f"| {name} | {' '.join(VARIANTS[name]) or '—'} | {curve} | {full:.4f} | {rows[-1]['seconds']:.0f} |"
        )
        print(lines[-1], flush=True)
    lines.append(f"\nload average at end {os.getloadavg()[0]:.1f}")
    (out / "gpt_ablations.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
