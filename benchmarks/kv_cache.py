"""Generation speed with and without the KV cache: tokens/s for N new tokens, greedy, batch 1.

    python benchmarks/kv_cache.py [--run runs/shakespeare_char] [--tokens 500] [--block 64]
        [--positions rotary] [--threads 1] [--compile]

With ``--run``, the trained model is used. Without, a model of the shakespeare_char shape (4 layers, 4
heads, width 128) with a ``--block`` context and ``--positions`` is built with random weights: speed does
not depend on what the weights learnt. With learned/sinusoidal positions, past block_size both paths re-run
the cropped context (the cache helps only within the block); with rotary positions the cache rolls and each
token costs one position however long the text, while the uncached path re-runs the sliding-window
reference (see polymodal.gpt.generate). Both paths produce the same tokens (checked). ``--compile`` adds a
row for the compiled decode step (polymodal.gpt.compiled), its compile + warm-up seconds printed apart and
its tokens checked against the others. For the comparison with nanoGPT's own sample.py see
benchmarks/gpt_vs_nanogpt.py.
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
    ap.add_argument("--compile", action="store_true", help="also time the compiled decode step")
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
    results, warm = {}, {}
    paths = {"off": (False, False), "on": (True, False)} | ({"on, compiled": (True, True)} if args.compile else {})
    for name, (use_cache, compile) in paths.items():
        t0 = time.perf_counter()
        generate(model, prompt, 20, temperature=0.0, use_cache=use_cache, compile=compile)  # warm-up (compiles)
        warm[name] = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = generate(model, prompt, args.tokens, temperature=0.0, use_cache=use_cache, compile=compile)
        results[name] = (out, time.perf_counter() - t0)
    assert all(r[0] == results["off"][0] for r in results.values()), "the paths' tokens differ"
    rate = {k: args.tokens / v[1] for k, v in results.items()}
    print(f"model: {where}; {args.tokens} new tokens, greedy, batch 1, {torch.get_num_threads()} threads")
    print("| KV cache | seconds | tokens/s | warm-up s (20 tokens, compiling) |\n|---|---|---|---|")
    for k in paths:
        print(f"| {k} | {results[k][1]:.2f} | {rate[k]:.0f} | {warm[k]:.1f} |")
    print(f"speed-up: {rate['on'] / rate['off']:.1f}x (identical tokens)")
    if args.compile:
        print(f"compiled step: {rate['on, compiled'] / rate['on']:.2f}x the eager cached path (identical tokens)")


if __name__ == "__main__":
    main()
