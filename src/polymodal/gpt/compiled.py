"""The one-token decode step with static shapes, compiled by ``torch.compile`` (inductor) into a few C++ kernels.

:class:`~polymodal.gpt.decode.Decoder` runs ~490 ATen operations per token, each with a fixed cost of a few
microseconds; at the shakespeare_char size that cost, not arithmetic, is the step's time. Compiling needs
shapes that do not change from token to token, so this step differs from the Decoder in three ways:

- it attends over all ``capacity`` slots of the ring, with an additive mask (-inf where a slot is not
  filled yet; :class:`KVCache` zero-fills its buffers so a masked slot is 0·finite, never NaN);
- the position is a 0-d tensor: the slot (``pos % capacity``), the mask and, with rotary positions, the
  cos/sin of the angle (computed in float64, as :class:`~polymodal.gpt.rotary.Rotary` does) are computed in
  the graph, so position 10^5 needs no recompilation and no table growth;
- the new key/value are written with ``index_copy_`` at a tensor slot.

Weights are transposed for ``mm`` as in the Decoder, but the query/key projection is the plain one: the
Decoder's extra rotated rows save it operations, while here the half-swap is index arithmetic fused into a
kernel and the rows would only add 0.5 MB to read per token (the step measured ~6 % faster without them).
They are stacked per kind and laid out in one flat buffer: 12 tensor inputs to guard per call, not ~40.
The matrix products stay ATen ``mm`` calls (inductor's own CPU loops for a one-row product measured slower,
as did its C++ GEMM template); the element-wise work between them (norms, rotation, cache write, attention,
GELU) is fused into one kernel per stretch. What is left per token, measured: the 17 products, which at one
row are bound by reading 3.2 MB of fp32 weights (more than this CPU's 2 MB L2; ~130 µs), ~18 fused
kernels, and ~45 µs of Dynamo's guards and wrappers.

Compilation costs ~17-25 s with an empty inductor cache and 4-5 s in a later process (the cache on disk,
``TORCHINDUCTOR_CACHE_DIR``), once per process and batch size (docs/benchmarks/nanogpt.md has the figures).
If it is unavailable or fails, the step logs one warning and falls back to the Decoder for good: same
results, no crash.
"""

from __future__ import annotations

import logging
import time
import types

import torch
import torch.nn.functional as F

from polymodal.gpt.cache import KVCache
from polymodal.gpt.decode import Decoder, decoder_for, mm_weight
from polymodal.gpt.model import GPT
from polymodal.gpt.rotary import BASE

log = logging.getLogger(__name__)


def _stack(tensors: list[torch.Tensor | None]) -> torch.Tensor | None:
    return None if tensors[0] is None else torch.stack(tensors)  # type: ignore[arg-type]


def _flatten(named: dict[str, torch.Tensor | None]) -> tuple[torch.Tensor, dict[str, tuple[int, int, tuple] | None]]:
    """One buffer holding every tensor of ``named`` (each from a 64-byte boundary) and each one's (start, end,
    shape). A compiled function pays ~1.5 µs per tensor input per call (guards, wrappers); views of one input
    are free inside the graph."""
    spans: dict[str, tuple[int, int, tuple] | None] = {}
    n = 0
    for name, t in named.items():
        spans[name] = None if t is None else (n, n + t.numel(), tuple(t.shape))
        n += 0 if t is None else -(-t.numel() // 16) * 16
    first = next(t for t in named.values() if t is not None)
    flat = first.new_zeros(n)
    for name, t in named.items():
        if t is not None:
            start, end, _ = spans[name]  # type: ignore[misc]
            flat[start:end] = t.reshape(-1)
    return flat, spans


class CompiledDecoder:
    """``CompiledDecoder(decoder)(token, cache)``: the same contract and logits (to rounding) as ``decoder``,
    through a compiled static-shape step. ``compile_seconds`` is the first call's extra time (compilation
    and warm-up), ``failed`` is set when it fell back to ``decoder``.
    """

    def __init__(self, decoder: Decoder) -> None:
        self.decoder, self.cfg = decoder, decoder.cfg
        model = decoder.model
        self.rotary = decoder.rotary
        # ((w1, b1), (wq, bq), (wp, bp), (w2, b2), (wf, bf), (wo, bo)) per layer. The query/key projection
        # without the Decoder's extra rotated rows: in the graph the rotation's half-swap is free (fused index
        # arithmetic), while the extra rows are 0.5 MB more weights to read per token.
        layers = [
            (lay[0], mm_weight(blk.attn.qkv), *lay[2:]) for lay, blk in zip(decoder.layers, model.blocks, strict=True)
        ]
        # (L, ...) per kind: norm gains/biases, then each product's weight and bias (None when bias=False).
        self.names = ("w1", "b1", "wq", "bq", "wp", "bp", "w2", "b2", "wf", "bf", "wo", "bo")
        stacked = {n: _stack([layer[i // 2][i % 2] for layer in layers]) for i, n in enumerate(self.names)}
        wte = model.wte.weight.detach()
        named = stacked | {"ln_w": decoder.ln_f[0], "ln_b": decoder.ln_f[1], "head": decoder.head, "wte": wte}
        named["scale"] = decoder.scale.to(wte.device)
        self.inv_freq: torch.Tensor | None = None
        if self.rotary:
            d = decoder.d
            self.inv_freq = BASE ** (-torch.arange(0, d, 2, dtype=torch.float64, device=wte.device) / d)
        else:
            named["pos"] = model.wpe.weight.detach() if model.wpe is not None else model.pe
        self.flat, self.spans = _flatten(named)
        self.compile_seconds: float | None = None
        self.failed = False
        # Dynamo keeps its compiled graphs (and its limit of 8 recompilations) per code object: a copy of
        # _step's code per decoder keeps models of other shapes or options from using up each other's limit.
        step = types.FunctionType(CompiledDecoder._step.__code__.replace(), globals(), "_step")
        # cpp_wrapper: the graph's ~35 kernel and mm calls are made from C++, not Python (~240 instead of ~295 µs
        # per step at the shakespeare_char size under load ≈ 3.7; cold compilation 15 s instead of 20).
        opts = {"cpp_wrapper": True}
        self._fn = torch.compile(types.MethodType(step, self), fullgraph=True, dynamic=False, options=opts)

    def _step(self, token: torch.Tensor, pos: torch.Tensor, ks: list[torch.Tensor], vs: list[torch.Tensor]):
        """Logits (B, V) for ``token`` (B,) at position ``pos`` (0-d); writes slot ``pos % capacity``."""
        c, h, d = self.decoder.c, self.decoder.h, self.decoder.d
        b, cap = token.shape[0], ks[0].shape[2]
        flat = self.flat  # every weight, one input: views of it cost nothing in the graph
        w = {k: None if v is None else flat[v[0] : v[1]].view(v[2]) for k, v in self.spans.items()}
        scale = w["scale"]
        x = F.embedding(token, w["wte"])  # (B, C)
        if self.rotary:
            angle = pos.double() * self.inv_freq  # (D/2,)
            cos, sin = angle.cos().float(), angle.sin().float()
            cos, sin = torch.cat([cos, cos]), torch.cat([-sin, sin])  # (D,), the sign of the rotation in sin
            cos = torch.stack([cos * scale, cos]).unsqueeze(1)  # (2, 1, D): queries scaled, keys not
            sin = torch.stack([sin * scale, sin]).unsqueeze(1)
        else:
            x = x + w["pos"].index_select(0, pos.view(1))  # (1, C)
        slot = (pos % cap).view(1)
        mask = torch.where(torch.arange(cap, device=x.device) <= pos, 0.0, float("-inf"))  # (capacity,)
        w1, b1, wq, bq, wp, bp, w2, b2, wf, bf, wo, bo = (w[n] for n in self.names)
        for i in range(len(ks)):
            a = F.layer_norm(x, (c,), w1[i], None if b1 is None else b1[i], 1e-5)
            qkv = torch.mm(a, wq[i]) if bq is None else torch.addmm(bq[i], a, wq[i])
            qkv = qkv.view(b, 3, h, d)
            qk = qkv[:, :2]
            if self.decoder.qk_norm:
                qk = torch.rms_norm(qk, (d,))
            if self.rotary:
                qk = torch.addcmul(qk * cos, qk.roll(d // 2, -1), sin)  # (B, 2, H, D); queries pre-scaled
                q = qk[:, 0]
            else:
                q = qk[:, 0] * scale
            ks[i].index_copy_(2, slot, qk[:, 1].unsqueeze(2))  # (B, H, capacity, D)
            vs[i].index_copy_(2, slot, qkv[:, 2].unsqueeze(2))
            scores = ((ks[i] * q.unsqueeze(2)).sum(-1) + mask).softmax(-1)  # (B, H, capacity)
            y = (scores.unsqueeze(-1) * vs[i]).sum(2).reshape(b, c)
            x = x + (torch.mm(y, wp[i]) if bp is None else torch.addmm(bp[i], y, wp[i]))
            a = F.layer_norm(x, (c,), w2[i], None if b2 is None else b2[i], 1e-5)
            a = torch.mm(a, wf[i]) if bf is None else torch.addmm(bf[i], a, wf[i])
            a = torch.relu(a).square() if self.decoder.relu2 else F.gelu(a)
            x = x + (torch.mm(a, wo[i]) if bo is None else torch.addmm(bo[i], a, wo[i]))
        logits = torch.mm(F.layer_norm(x, (c,), w["ln_w"], w["ln_b"], 1e-5), w["head"])
        if self.decoder.cap:
            logits = self.decoder.cap * torch.tanh(logits / self.decoder.cap)
        return logits

    @torch.no_grad()
    def __call__(self, token: torch.Tensor, cache: KVCache) -> torch.Tensor:
        if self.failed:
            return self.decoder(token, cache)
        pos = cache.length
        if not cache.rolling and pos + 1 > cache.capacity:
            raise ValueError(f"gpt: KV cache holds {cache.capacity} positions; {pos + 1} requested")
        first = self.compile_seconds is None
        t0 = time.perf_counter() if first else 0.0
        try:
            # A fresh (B,) token: a column of the context has a stride that changes every step (a recompile).
            token = token.clone(memory_format=torch.contiguous_format)
            logits = self._fn(token, torch.tensor(pos, device=token.device), cache.k, cache.v)
        except Exception as e:  # noqa: BLE001 — any compiler failure (no C++ compiler, unsupported op) falls back
            why = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            log.warning("gpt: compiled decoding unavailable (%s); using the eager decoder", why[:200])
            self.failed = True
            return self.decoder(token, cache)
        if first:
            self.compile_seconds = time.perf_counter() - t0
            log.info("gpt: decode step compiled in %.1f s", self.compile_seconds)
        for i in range(len(cache.n)):
            cache.n[i] = pos + 1
        return logits


def compiled_decoder_for(model: GPT) -> CompiledDecoder:
    """The model's :class:`CompiledDecoder`, kept (like :func:`decoder_for`'s Decoder) until its weights change;
    a fallback, once taken, is kept with it."""
    decoder = decoder_for(model)
    cached = model.__dict__.get("_compiled_decoder")
    if cached is None or cached.decoder is not decoder:
        cached = CompiledDecoder(decoder)
        model.__dict__["_compiled_decoder"] = cached
    return cached
