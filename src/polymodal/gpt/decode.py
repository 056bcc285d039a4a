"""One generation step in as few tensor operations as possible: the next token's logits from the KV cache.

At the shakespeare_char size (4 layers, width 128) a one-token step does almost no arithmetic (~0.8 M
multiply-adds); its time is the fixed cost of each PyTorch operation and module call. ``GPT.forward`` with a
cache runs ~650 ATen operations per token (views, generic masks, module calls); :class:`Decoder` runs the
same computation with ~20 per layer on the model's own weight tensors (looked up once), reading and writing
the same :class:`KVCache`, so a prompt is prefilled by ``forward`` and continued here (tests/test_gpt.py
checks that both give the same logits). It covers every :class:`GPTConfig` option except cross-attention.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from polymodal.gpt.cache import KVCache
from polymodal.gpt.model import GPT


class Decoder:
    """``Decoder(model)(token, cache)``: logits (B, V) after appending ``token`` (B,) at position
    ``cache.length``; updates ``cache``, which must already hold a position (prefilled by ``model.forward``).

    The weights are captured when it is built: build a new one after changing the model.
    """

    def __init__(self, model: GPT) -> None:
        cfg = model.cfg
        self.model, self.cfg = model, cfg
        self.c, self.h, self.d = cfg.n_embd, cfg.n_head, cfg.n_embd // cfg.n_head
        self.scale = 1.0 / math.sqrt(self.d)
        self.relu2 = cfg.mlp == "relu2"
        self.layers = [
            (
                (b.ln1.weight, b.ln1.bias),
                (b.attn.qkv.weight, b.attn.qkv.bias),
                (b.attn.proj.weight, b.attn.proj.bias),
                (b.ln2.weight, b.ln2.bias),
                (b.mlp[0].weight, b.mlp[0].bias),
                (b.mlp[2].weight, b.mlp[2].bias),
            )
            for b in model.blocks
        ]

    @torch.no_grad()
    def __call__(self, token: torch.Tensor, cache: KVCache) -> torch.Tensor:
        model, cfg, c, h, d = self.model, self.cfg, self.c, self.h, self.d
        pos = cache.length
        if not cache.rolling and pos + 1 > cache.capacity:
            raise ValueError(f"gpt: KV cache holds {cache.capacity} positions; {pos + 1} requested")
        b = token.shape[0]
        x = F.embedding(token, model.wte.weight)  # (B, C)
        rope = model.rotary(pos, 1) if model.rotary is not None else None  # (1, D) cos, signed sin
        if model.wpe is not None:
            x = x + model.wpe.weight[pos]
        elif rope is None:
            x = x + model.pe[pos]
        slot, held = pos % cache.capacity, min(pos + 1, cache.capacity)
        qk_norm = cfg.qk_norm
        for i, (ln1, qkv_w, proj, ln2, fc, out) in enumerate(self.layers):
            a = F.layer_norm(x, (c,), *ln1)
            qkv = F.linear(a, *qkv_w).view(b, 3, h, d)
            qk = qkv[:, :2]  # (B, 2, H, D): queries and keys normalised and rotated together
            if qk_norm:
                qk = F.rms_norm(qk, (d,))
            if rope is not None:
                qk = torch.addcmul(qk * rope[0], qk.roll(d // 2, dims=-1), rope[1])
            keys, values = cache.k[i], cache.v[i]  # (B, H, capacity, D)
            keys.select(2, slot).copy_(qk[:, 1])
            values.select(2, slot).copy_(qkv[:, 2])
            cache.n[i] = pos + 1
            k = keys[:, :, :held].flatten(0, 1)  # (B·H, held, D)
            scores = torch.bmm(k, qk[:, 0].reshape(b * h, d, 1)).mul_(self.scale).softmax(dim=1)  # (B·H, held, 1)
            y = torch.bmm(scores.transpose(1, 2), values[:, :, :held].flatten(0, 1))  # (B·H, 1, D)
            x = x + F.linear(y.view(b, c), *proj)
            a = F.linear(F.layer_norm(x, (c,), *ln2), *fc)
            a = F.relu(a).square() if self.relu2 else F.gelu(a)
            x = x + F.linear(a, *out)
        logits = F.linear(F.layer_norm(x, (c,), model.ln_f.weight, model.ln_f.bias), model.lm_head.weight)
        if cfg.logit_softcap:
            logits = cfg.logit_softcap * torch.tanh(logits / cfg.logit_softcap)
        return logits
