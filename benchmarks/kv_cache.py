"""Generation speed with and without the KV cache: tokens/s for N new tokens, greedy, batch 1.

    python benchmarks/kv_cache.py [--run runs/shakespeare_char] [--tokens 500] [--block 64]
        [--positions rotary] [--threads 1]

With ``--run``, the trained model is used. Without, a model of the shakespeare_char shape (4 layers, 4
heads, width 128) with a ``--block`` context and ``--positions`` is built with random weights: speed does
not depend on what the weights learnt. With learned/sinusoidal positions, past block_size both paths re-run
the cropped context (the cache helps only within the block); with rotary positions the cache rolls and each
token costs one position however long the text, while the uncached path re-runs the sliding-window
reference (see polymodal.gpt.generate). Both paths produce the same tokens (checked). For the comparison
with nanoGPT's own sample.py see benchmarks/gpt_vs_nanogpt.py.
"""

from __future__ import annotations

import argparse
import time

import torch

from polymodal.gpt.generate import generate
from polymodal.gpt.model import GPT, GPTConfig
from polymodal.kinds.lm.run import LMRun


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=None)
    ap.add_argument("--tokens", type=int, default=500)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--positions", default="rotary", choices=["learned", "sinusoidal", "rotary"])
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.run:
        lm = LMRun(args.run)
        model, tok = lm.model, lm.tokenizer
        prompt = torch.tensor([tok.encode("\n")])
        where = args.run
    else:
        torch.manual_seed(0)
        cfg = GPTConfig(vocab_size=65, block_size=args.block, positions=args.positions)
        model = GPT(cfg).eval()
        prompt = torch.zeros(1, 1, dtype=torch.long)
        where = f"random weights, block {args.block}, {args.positions} positions"
    results = {}
    for use_cache in (False, True):
        generate(model, prompt, 20, temperature=0.0, use_cache=use_cache)  # warm-up
        t0 = time.perf_counter()
        out = generate(model, prompt, args.tokens, temperature=0.0, use_cache=use_cache)
        results[use_cache] = (out, time.perf_counter() - t0)
    assert results[True][0] == results[False][0], "cached and uncached generation differ"
    rate = {k: args.tokens / v[1] for k, v in results.items()}
    print(f"model: {where}; {args.tokens} new tokens, greedy, batch 1, {torch.get_num_threads()} threads")
    print("| KV cache | seconds | tokens/s |\n|---|---|---|")
    for k in (False, True):
        print(f"| {'on' if k else 'off'} | {results[k][1]:.2f} | {rate[k]:.0f} |")
    print(f"speed-up: {rate[True] / rate[False]:.1f}x (identical tokens)")


if __name__ == "__main__":
    main()
