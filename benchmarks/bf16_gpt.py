"""Does bf16 autocast speed up GPT training on this CPU? Milliseconds per training step, fp32 vs bf16.

    python benchmarks/bf16_gpt.py [--threads 2] [--batches 12 64] [--steps 20]

The model has the shakespeare_char shape (4 layers, 4 heads, width 128, context 64, 65 characters); one step
is forward + backward + gradient clipping + AdamW, as in the Trainer. bf16 pays off only where the CPU has
bf16 matrix units (AMX, AVX512-BF16); without them PyTorch emulates bf16 matmuls and it is much slower.
The CPU flags found are printed with the table.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import torch

from polymodal.gpt.model import GPT, GPTConfig


def step_ms(batch: int, bf16: bool, steps: int) -> float:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randint(65, (batch, 64)), torch.randint(65, (batch, 64))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(x, y)[1]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, nargs="+", default=[12, 64])
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = sorted(set(re.findall(r"\b(amx_bf16|amx_tile|avx512_bf16|avx512f|avx2)\b", cpuinfo)))
    print(f"CPU flags: {', '.join(flags) or 'none of amx/avx512/avx2'}; {args.threads} threads")
    print("| batch | fp32 ms/step | bf16 ms/step | bf16 speed-up |\n|---|---|---|---|")
    for b in args.batches:
        fp32, bf16 = step_ms(b, False, args.steps), step_ms(b, True, args.steps)
        print(f"| {b} | {fp32:.1f} | {bf16:.1f} | {fp32 / bf16:.2f}x |")


if __name__ == "__main__":
    main()
