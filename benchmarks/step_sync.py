"""What reading the loss back costs per training step: each step reads one number from the device (the loss, for
the metrics and the NaN check) at its end. On the CPU that is free; on a GPU it makes the host wait for the step's
kernels. This times the AV-Digits recipe's model, one thread, on a real-shaped random batch:

    python benchmarks/step_sync.py [--steps 40] [--device cpu]

- ``none``: the loss is never read (the lower bound: what a loop that never looks at it would cost);
- ``one read``: ``loss.item()`` after the optimiser step (what training does);
- ``two reads``: ``torch.isfinite(loss)`` before backward and ``loss.item()`` after (what it did before).

Modes are interleaved (none, one, two, none, ...) and the median ms per step is printed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from polymodal import api
from polymodal.model import build_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    device = torch.device(args.device)
    recipe = api.load_recipe("avdigits")
    shapes = {"image": (1, 28, 28), "audio": (1, 32, 80)}  # (C, H, W) and (C, mel bands, frames)
    model = build_model(recipe, shapes, {"kind": "class", "classes": [str(d) for d in range(10)]}, {}).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = {k: torch.randn(64, *s, device=device) for k, s in shapes.items()}
    y = torch.randint(0, 10, (64,), device=device)

    def step(mode: str) -> None:
        loss = model.loss(model(x, None), y)
        if mode == "two reads" and not torch.isfinite(loss):
            raise FloatingPointError
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if mode != "none":
            loss.item()

    modes = ["none", "one read", "two reads"]
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(5):
        step("none")
    for _ in range(args.steps):
        for m in modes:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            step(m)
            if device.type == "cuda":
                torch.cuda.synchronize()  # the step's work is done in every mode before the clock stops
            times[m].append(time.perf_counter() - t)
    print(f"| reads per step ({args.device}) | median ms/step |\n|---|---|")
    for m in modes:
        print(f"| {m} | {1e3 * statistics.median(times[m]):.2f} |")


if __name__ == "__main__":
    main()
