"""One generation step in as few tensor operations as possible: the next token's logits from the KV cache.

At the shakespeare_char size (4 layers, width 128) a one-token step does almost no arithmetic (~0.8 M
multiply-adds); its time is the fixed cost of each PyTorch operation. ``GPT.forward`` with a cache runs ~650
ATen operations per token (module calls, generic masks, views, ``F.linear``'s transposes); :class:`Decoder`
runs the same computation on the model's weights, prepared once: transposed for ``torch.mm``/``addmm``; with
rotary positions, the query/key rows also with each head's two halves swapped, so one product yields both a
vector and its rotated partner (no ``roll``; RMS-normalising commutes with the swap), and the attention scale
folded into the queries' rotation table. It reads and writes the same :class:`KVCache`, so a prompt is
prefilled by ``forward`` and continued here (tests/test_gpt_rolling.py checks both give the same logits). It
covers every :class:`GPTConfig` option except cross-attention.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from polymodal.gpt.cache import KVCache
from polymodal.gpt.model import GPT


def mm_weight(layer: nn.Linear, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(C_in, C_out) weight for ``x @ w`` (rows of the layer picked by ``rows``) and its bias."""
    w, b = layer.weight.detach(), None if layer.bias is None else layer.bias.detach()
    if rows is not None:
        w, b = w[rows], None if b is None else b[rows]
    return w.t().contiguous(), b


class Decoder:
    """``Decoder(model)(token, cache)``: logits (B, V) after appending ``token`` (B,) at position
    ``cache.length``; updates ``cache``, which must already hold a position (prefilled by ``model.forward``).

    The weights are copied when it is built (a second copy of the model's matrices): use :func:`decoder_for`,
    which keeps one per model and rebuilds it when a parameter has changed or moved.
    """

    def __init__(self, model: GPT) -> None:
        cfg = model.cfg
        self.model, self.cfg = model, cfg
        c, h = cfg.n_embd, cfg.n_head
        d = c // h
        self.c, self.h, self.d = c, h, d
        self.rotary = model.rotary is not None
        self.scale = torch.tensor([1.0 / math.sqrt(d)])
        j = torch.arange(c)
        swapped = j - j % d + (j % d + d // 2) % d  # each head's halves exchanged: x -> roll(x, D/2)
        # Rows of the fused projection: q, k, (q swapped, k swapped,) v.
        rows = torch.cat([j, c + j, j[swapped], c + j[swapped], 2 * c + j]) if self.rotary else None
        self.layers = [
            (
                (b.ln1.weight.detach(), None if b.ln1.bias is None else b.ln1.bias.detach()),
                mm_weight(b.attn.qkv, rows),
                mm_weight(b.attn.proj),
                (b.ln2.weight.detach(), None if b.ln2.bias is None else b.ln2.bias.detach()),
                mm_weight(b.mlp[0]),
                mm_weight(b.mlp[2]),
            )
            for b in model.blocks
        ]
        self.ln_f = (model.ln_f.weight.detach(), None if model.ln_f.bias is None else model.ln_f.bias.detach())
        self.head = model.lm_head.weight.detach().t().contiguous()
        self.relu2, self.qk_norm, self.cap = cfg.mlp == "relu2", cfg.qk_norm, cfg.logit_softcap
        if self.rotary:
            self._tables(cfg.block_size)

    def _tables(self, length: int) -> None:
        """(2, L, D) cos and signed sin for positions < ``length`` (at least): row 0 rotates the queries and
        applies the attention scale, row 1 rotates the keys."""
        rotary = self.model.rotary
        assert rotary is not None
        rotary(0, length)  # grows the model's tables when they are shorter
        cos, sin = rotary.cos, rotary.sin
        self.tables = (torch.stack([cos * self.scale, cos]), torch.stack([sin * self.scale, sin]))

    @torch.no_grad()
    def __call__(self, token: torch.Tensor, cache: KVCache) -> torch.Tensor:
        model, c, h, d = self.model, self.c, self.h, self.d
        pos = cache.length
        if not cache.rolling and pos + 1 > cache.capacity:
            raise ValueError(f"gpt: KV cache holds {cache.capacity} positions; {pos + 1} requested")
        b = token.shape[0]
        x = torch.embedding(model.wte.weight, token)  # (B, C)
        if self.rotary:
            if pos >= self.tables[0].shape[1]:
                self._tables(pos + 1)
            cos, sin = self.tables[0][:, pos : pos + 1], self.tables[1][:, pos : pos + 1]  # (2, 1, D)
        elif model.wpe is not None:
            x = x + model.wpe.weight[pos]
        else:
            x = x + model.pe[pos]
        slot, held = pos % cache.capacity, min(pos + 1, cache.capacity)
        full = held == cache.capacity
        n_qk, rotary, qk_norm, relu2, shape, eps = (
            4 if self.rotary else 2,
            self.rotary,
            self.qk_norm,
            self.relu2,
            (c,),
            1e-5,
        )
        # torch.* builtins rather than F.* wrappers, and mm/addmm inlined: at ~5 µs per call, Python matters.
        for i, ((w1, b1), (wq, bq), (wp, bp), (w2, b2), (wf, bf), (wo, bo)) in enumerate(self.layers):
            a = torch.layer_norm(x, shape, w1, b1, eps)
            qkv = (torch.mm(a, wq) if bq is None else torch.addmm(bq, a, wq)).view(b, n_qk + 1, h, d)
            qk = qkv[:, :n_qk]  # (B, 2 or 4, H, D)
            if qk_norm:
                qk = torch.rms_norm(qk, (d,))
            if rotary:
                qk = torch.addcmul(qk[:, :2] * cos, qk[:, 2:], sin)  # (B, 2, H, D); queries pre-scaled
                q = qk[:, 0]
            else:
                q = qk[:, 0] * self.scale
            keys, values = cache.k[i], cache.v[i]  # (B, H, capacity, D)
            keys.select(2, slot).copy_(qk[:, 1])
            values.select(2, slot).copy_(qkv[:, n_qk])
            cache.n[i] = pos + 1
            if not full:
                keys, values = keys.narrow(2, 0, held), values.narrow(2, 0, held)
            scores = torch.bmm(keys.flatten(0, 1), q.reshape(b * h, d, 1)).softmax(dim=1)  # (B·H, held, 1)
            y = torch.bmm(scores.transpose(1, 2), values.flatten(0, 1)).view(b, c)  # (B·H, 1, D) -> (B, C)
            x = x + (torch.mm(y, wp) if bp is None else torch.addmm(bp, y, wp))
            a = torch.layer_norm(x, shape, w2, b2, eps)
            a = torch.mm(a, wf) if bf is None else torch.addmm(bf, a, wf)
            a = torch.relu(a).square() if relu2 else F.gelu(a)
            x = x + (torch.mm(a, wo) if bo is None else torch.addmm(bo, a, wo))
        logits = torch.mm(F.layer_norm(x, (c,), *self.ln_f), self.head)
        if self.cap:
            logits = self.cap * torch.tanh(logits / self.cap)
        return logits


def _stamp(model: GPT) -> tuple:
    """Changes when any parameter is modified in place (optimiser steps, ``load_state_dict``) or moved."""
    params = list(model.parameters())
    return (params[0].device, params[0].dtype, *(p._version for p in params), *(p.data_ptr() for p in params))


def decoder_for(model: GPT) -> Decoder:
    """The model's :class:`Decoder`, built on first use and again only after its weights changed."""
    stamp = _stamp(model)
    cached = model.__dict__.get("_decoder")
    if cached is None or cached[0] != stamp:
        cached = (stamp, Decoder(model))
        model.__dict__["_decoder"] = cached
    return cached[1]
