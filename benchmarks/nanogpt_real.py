"""karpathy/nanoGPT itself, run from a temporary copy for benchmarks/gpt_vs_nanogpt.py (its code is never
committed here).

- :func:`extract`: ``git archive`` of a local clone (``$NANOGPT_GIT``, default the fetched bare repository
  /work/.mirror/karpathy+nanoGPT/repo) into a temporary folder; None when there is none.
- :func:`prepare`: its own ``data/shakespeare_char/prepare.py`` on the local tiny-Shakespeare file (copied in
  first, so nothing is downloaded), then a check that its train.bin/val.bin hold exactly polymodal's ids.
- :func:`train`: its own ``train.py config/train_shakespeare_char.py`` with the documented CPU overrides,
  plus ``--dtype=float32`` (its default ``float16`` on a CUDA-less machine only switches on a no-op
  GradScaler and a deprecation warning) and ``--out_dir``; log lines parsed as they arrive.
- :func:`sample_timed`: its own ``sample.py`` on the trained checkpoint, with ``GPT.generate`` wrapped by a
  timer (a runtime monkeypatch; model loading and decoding are not timed) and a stub ``tiktoken`` module
  (sample.py imports it at the top but uses it only without a meta.pkl, and it is not installed here).
- :func:`full_val_loss`: the checkpoint loaded with its own model.py, scored on given windows.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

MIRROR = os.environ.get("NANOGPT_GIT", "/work/.mirror/karpathy+nanoGPT/repo")
CPU_ARGS = [
    "config/train_shakespeare_char.py",
    "--device=cpu",
    "--compile=False",
    "--eval_iters=20",
    "--log_interval=1",
    "--block_size=64",
    "--batch_size=12",
    "--n_layer=4",
    "--n_head=4",
    "--n_embd=128",
    "--max_iters=2000",
    "--lr_decay_iters=2000",
    "--dropout=0.0",
    "--dtype=float32",
]
ITER = re.compile(r"^iter (\d+): loss ([\d.]+), time ([\d.]+)ms")
EVAL = re.compile(r"^step (\d+): train loss ([\d.]+), val loss ([\d.]+)")

SAMPLER = """
import json, os, sys, time
sys.path.insert(0, os.getcwd())
import model
times, original = [], model.GPT.generate
def timed(self, *args, **kwargs):
    t0 = time.perf_counter()
    out = original(self, *args, **kwargs)
    times.append(time.perf_counter() - t0)
    return out
model.GPT.generate = timed
sys.argv = ["sample.py", *sys.argv[1:]]
import runpy
runpy.run_path("sample.py", run_name="__main__")
print("TIMES " + json.dumps(times))
"""


def extract() -> Path | None:
    """A temporary copy of nanoGPT's files, or None when no local clone exists."""
    if not Path(MIRROR).exists():
        return None
    tree = Path(tempfile.mkdtemp(prefix="nanogpt-"))
    archive = subprocess.run(["git", "--git-dir", MIRROR, "archive", "HEAD"], capture_output=True, check=False)
    if archive.returncode:
        return None
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    if not (tree / "train.py").is_file():
        return None
    (tree / "_shim").mkdir()
    (tree / "_shim" / "tiktoken.py").write_text("def get_encoding(name):\n    raise ImportError('tiktoken stub')\n")
    return tree


def commit() -> str:
    out = subprocess.run(["git", "--git-dir", MIRROR, "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip()[:12]


def prepare(tree: Path, text_file: str, expected_train: list[int], expected_val: list[int]) -> None:
    """nanoGPT's prepare.py on the local text; exits if its ids differ from polymodal's."""
    data = tree / "data" / "shakespeare_char"
    shutil.copy(text_file, data / "input.txt")
    subprocess.run([sys.executable, "prepare.py"], cwd=data, check=True, capture_output=True)
    train = np.fromfile(data / "train.bin", dtype=np.uint16).astype(np.int64)
    val = np.fromfile(data / "val.bin", dtype=np.uint16).astype(np.int64)
    if not (np.array_equal(train, expected_train) and np.array_equal(val, expected_val)):
        sys.exit("nanoGPT's prepare.py produced other token ids than polymodal's char tokenizer; not comparable")


def env(threads: int, tree: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(tree / "_shim")}


def train(tree: Path, out_dir: Path, threads: int) -> dict[str, Any]:
    """Run train.py; returns the eval curve as (loop seconds, val) and the loop's total seconds.

    Loop seconds are the sum of train.py's own per-iteration times (its ``dt`` includes the evaluation done
    at that iteration); an evaluation at step N is dated at the end of iteration N."""
    cmd = [sys.executable, "-u", "train.py", *CPU_ARGS, f"--out_dir={out_dir}"]
    proc = subprocess.Popen(cmd, cwd=tree, env=env(threads, tree), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    seconds, pending, curve = 0.0, None, []
    for line in proc.stdout:
        if m := ITER.match(line):
            seconds += float(m.group(3)) / 1000
            if pending is not None and int(m.group(1)) == pending[0]:
                curve.append((round(seconds, 3), pending[1]))
                pending = None
        elif m := EVAL.match(line):
            pending = (int(m.group(1)), float(m.group(3)))
    if proc.wait():
        sys.exit(f"nanoGPT train.py failed (exit {proc.returncode}): {' '.join(cmd)}")
    return {"curve": curve, "train_seconds": round(seconds, 3)}


def load_model(tree: Path, out_dir: Path) -> torch.nn.Module:
    """The checkpoint in its own model.py's GPT (weights_only load: tensors and plain values only)."""
    spec = importlib.util.spec_from_file_location("nanogpt_model", tree / "model.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["nanogpt_model"] = module
    spec.loader.exec_module(module)
    ckpt = torch.load(out_dir / "ckpt.pt", map_location="cpu", weights_only=True)
    model = module.GPT(module.GPTConfig(**ckpt["model_args"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()


@torch.no_grad()
def full_val_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean cross-entropy over windows x -> y (N, T), 256 at a time; ``model(x, y)`` returns (logits, loss)."""
    total = 0.0
    for i in range(0, len(x), 256):
        total += float(model(x[i : i + 256], y[i : i + 256])[1]) * len(x[i : i + 256])
    return total / len(x)


def sample_timed(tree: Path, out_dir: Path, threads: int, samples: int, tokens: int) -> list[float]:
    """Seconds of each ``model.generate`` call of sample.py (``samples`` samples of ``tokens`` tokens from
    "\\n", its defaults temperature 0.8 and top-k 200)."""
    cmd = [
        sys.executable,
        "-c",
        SAMPLER,
        f"--out_dir={out_dir}",
        "--device=cpu",
        "--dtype=float32",
        "--compile=False",
        f"--num_samples={samples}",
        f"--max_new_tokens={tokens}",
    ]
    done = subprocess.run(cmd, cwd=tree, env=env(threads, tree), capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"nanoGPT sample.py failed:\n{done.stderr[-2000:]}")
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("TIMES "))
    return json.loads(line[6:])
