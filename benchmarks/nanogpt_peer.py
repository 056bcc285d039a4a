"""The fallback peer for benchmarks/gpt_vs_nanogpt.py: nanoGPT's shakespeare_char CPU run, re-implemented.

The benchmark runs karpathy/nanoGPT's own train.py when a clone is available (benchmarks/nanogpt_real.py);
only without one does it run this file, which re-creates, from nanoGPT's published configuration and code,
what ``python train.py config/train_shakespeare_char.py --device=cpu
--compile=False --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4
--n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0`` does:

- data: the characters of tiny Shakespeare, vocabulary = the sorted set of all characters, the first 90% for
  training and the last 10% for validation, stored as uint16 and read through ``np.memmap`` per batch;
- model: GPT-2 style, pre-LayerNorm without biases, causal flash attention (SDPA), GELU MLP (4×), tied
  embeddings, N(0, 0.02) init with residual projections at 0.02/sqrt(2·layers), fp32 on the CPU;
- training: batch 12 of random 64-character windows, AdamW (betas 0.9/0.99, weight decay 0.1 on 2-D
  parameters only), learning rate 1e-3 with 100 linear warmup iterations then cosine to 1e-4 at
  iteration 2000, gradient clipping at 1.0, iterations 0..2000, ``loss.item()`` every iteration;
- evaluation at every 250th iteration (0 included): mean loss of 20 random batches of each split, and a
  checkpoint written when the validation loss improves.

It prints one JSON line per evaluation (iteration, seconds since the loop started, train and val loss) and
a final line with the loss on every non-overlapping 64-character window of the validation text, which the
benchmark uses to compare both models on exactly the same data (outside the timed loop).

    python benchmarks/nanogpt_peer.py --data PATH/input.txt [--threads 2] [--seed 1337]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BLOCK, BATCH, LAYERS, HEADS, WIDTH = 64, 12, 4, 4, 128
LR, MIN_LR, WARMUP, ITERS, BETA2, DECAY, CLIP = 1e-3, 1e-4, 100, 2000, 0.99, 0.1, 1.0
EVAL_INTERVAL, EVAL_ITERS, SPLITS = 250, 20, ("train", "val")


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c_attn = nn.Linear(WIDTH, 3 * WIDTH, bias=False)
        self.c_proj = nn.Linear(WIDTH, WIDTH, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = (z.view(b, t, HEADS, c // HEADS).transpose(1, 2) for z in self.c_attn(x).split(c, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(WIDTH, bias=False)
        self.attn = Attention()
        self.ln_2 = nn.LayerNorm(WIDTH, bias=False)
        self.c_fc = nn.Linear(WIDTH, 4 * WIDTH, bias=False)
        self.c_proj = nn.Linear(4 * WIDTH, WIDTH, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x))))


class CharGPT(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, WIDTH)
        self.wpe = nn.Embedding(BLOCK, WIDTH)
        self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
        self.ln_f = nn.LayerNorm(WIDTH, bias=False)
        self.head = nn.Linear(WIDTH, vocab, bias=False)
        self.head.weight = self.wte.weight
        for name, p in self.named_parameters():
            if p.ndim == 2:
                std = 0.02 / math.sqrt(2 * LAYERS) if name.endswith("c_proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for layer in self.layers:
            x = layer(x)
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def lr_at(it: int) -> float:
    if it < WARMUP:
        return LR * (it + 1) / (WARMUP + 1)
    if it > ITERS:
        return MIN_LR
    ratio = (it - WARMUP) / (ITERS - WARMUP)
    return MIN_LR + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (LR - MIN_LR)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="tiny Shakespeare input.txt")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1337)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    text = Path(args.data).read_text(encoding="utf-8")
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    ids = np.array([stoi[c] for c in text], dtype=np.uint16)
    cut = int(len(ids) * 0.9)
    tmp = Path(tempfile.mkdtemp(prefix="nanogpt_peer_"))
    ids[:cut].tofile(tmp / "train.bin")
    ids[cut:].tofile(tmp / "val.bin")

    def get_batch(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        data = np.memmap(tmp / f"{split}.bin", dtype=np.uint16, mode="r")
        ix = torch.randint(len(data) - BLOCK, (BATCH,))
        x = torch.stack([torch.from_numpy(data[i : i + BLOCK].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(data[i + 1 : i + 1 + BLOCK].astype(np.int64)) for i in ix])
        return x, y

    model = CharGPT(len(chars))
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": DECAY},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=LR, betas=(0.9, BETA2))

    @torch.no_grad()
    def estimate() -> dict[str, float]:
        model.eval()
        out = {s: float(torch.stack([model(*get_batch(s)) for _ in range(EVAL_ITERS)]).mean()) for s in SPLITS}
        model.train()
        return out

    best = math.inf
    t0 = time.perf_counter()
    it = 0
    x, y = get_batch("train")
    while True:
        for group in opt.param_groups:
            group["lr"] = lr_at(it)
        if it % EVAL_INTERVAL == 0:
            losses = estimate()
            print(json.dumps({"iter": it, "seconds": round(time.perf_counter() - t0, 3), **losses}), flush=True)
            if it > 0 and losses["val"] < best:
                best = losses["val"]
                torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "iter": it}, tmp / "ckpt.pt")
        loss = model(x, y)
        x, y = get_batch("train")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()  # log_interval=1
        it += 1
        if it > ITERS:
            break
    seconds = time.perf_counter() - t0

    # Not timed: the same fixed windows the benchmark scores polymodal on.
    val = torch.from_numpy(ids[cut:].astype(np.int64))
    print(json.dumps({"final": True, "seconds": round(seconds, 3), "full_val_loss": full_val_loss(model, val)}))


@torch.no_grad()
def full_val_loss(model: nn.Module, val: torch.Tensor) -> float:
    """Mean next-character loss over every non-overlapping 64-character window of the validation text."""
    model.eval()
    n = (len(val) - 1) // BLOCK
    x = val[: n * BLOCK].view(n, BLOCK)
    y = val[1 : n * BLOCK + 1].view(n, BLOCK)
    total = sum(float(model(x[i : i + 256], y[i : i + 256])) * len(x[i : i + 256]) for i in range(0, n, 256))
    return total / n


if __name__ == "__main__":
    main()
