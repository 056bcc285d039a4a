"""Where a supervised run's training time goes: one run under cProfile, split into the parts of a step.

    python benchmarks/profile_step.py [RECIPE] [--epochs 2] [--threads 1] [--set key=value ...]

Prints the run's time inside training steps (the trainer's ``step_seconds``, validation excluded) and, from the
profile, the cumulative seconds of: fetching batches (the DataLoader, with each row's ``__getitem__`` and the
collate), of which seeding rows one by one (``torch.manual_seed``, the per-row augmentation seed); the
optimizer step (forward, loss, backward, clipping, update), of which backward; and validation. cProfile
slows Python-heavy parts more than the kernels, so read the shares, not the absolute figures. Run it with
another checkout's ``PYTHONPATH`` to compare before and after a change.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
from pathlib import Path

import torch

from polymodal import api
from polymodal.kinds.base import train

# (label, file suffix, function name): summed cumulative time of matching functions.
PARTS = [
    ("fetch batches (DataLoader)", "torch/utils/data/dataloader.py", "__next__"),
    ("  of which: seeding each row", "torch/random.py", "manual_seed"),
    ("optimizer_step (forward, loss, backward, clip, update)", "polymodal/training/steps.py", "optimizer_step"),
    ("  of which: backward", "torch/_tensor.py", "backward"),
    ("validation (excluded from step time)", "polymodal/training/steps.py", "end_epoch"),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("recipe", nargs="?", default="avdigits_hard")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", dest="sets", action="append", default=[])
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    sets = [*a.sets, f"trainer.epochs={a.epochs}", f"trainer.threads={a.threads}"]
    recipe = api.load_recipe(a.recipe, sets)
    prof = cProfile.Profile()
    with tempfile.TemporaryDirectory() as tmp:
        prof.enable()
        res = train(recipe, Path(tmp) / "run")
        prof.disable()
    assert res.fit is not None
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    step = res.fit.step_seconds
    print(f"{a.recipe} {' '.join(a.sets)}: {res.fit.samples} training examples, {step:.2f} s inside steps")
    print("| part | seconds | share of step time |\n|---|---|---|")
    for label, file, func in PARTS:
        ct = sum(v[3] for (f, _, fn), v in stats.items() if f.endswith(file) and fn == func)
        print(f"| {label} | {ct:.2f} | {100 * ct / step:.0f} % |")
    print(f"| **inside steps** | {step:.2f} | 100 % |")


if __name__ == "__main__":
    main()
