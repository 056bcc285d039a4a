"""Several decode steps and their sampling in one compiled call: :class:`MultiStep`.

:class:`~polymodal.gpt.compiled.CompiledDecoder` makes one call into compiled code per token, and each call
pays Dynamo's guards, the C++ wrapper and the Python sampling around it. Here one call runs ``k`` steps
(the step unrolled ``k`` times in one graph) and picks each next token inside the graph, so that cost is
paid once per ``k`` tokens:

- greedy (temperature 0): ``argmax`` of the logits: the same tokens as the one-step path;
- sampling: the Gumbel-max trick, ``argmax(logits / temperature + g)`` with ``g = -log(-log(u))`` and ``u``
  uniform, drawn before the call (``torch.rand`` with the caller's generator) and passed in. That token has
  exactly the distribution ``softmax(logits / temperature)`` (top-k applied first) that ``torch.multinomial``
  samples, but the draws differ: a seeded run repeats itself, not the one-step path's tokens.

Only the options that fit in the graph are supported (temperature, top-k); :func:`supports` says when.
A chunk may overshoot what the caller keeps (``max_new_tokens`` not a multiple of ``k``, a stop sequence
inside the chunk): the KV cache then holds those extra positions, so a caller must end generation there
(``stream`` does), not continue from that cache.
"""

from __future__ import annotations

import logging
import time
import types

import torch

from polymodal.gpt.cache import KVCache
from polymodal.gpt.compiled import CompiledDecoder

log = logging.getLogger(__name__)

# Tokens per compiled call. At the shakespeare_char size, in-process, load ~3 (docs/benchmarks/nanogpt.md): 8 gave
# ~2.3x the one-step tokens/s; 4 ~10-20 % fewer tokens/s than 8, 16 ~10 % more but ~80 s cold compile per variant
# (8: ~35 s). The uniforms are drawn per chunk in token order, so a seed gives the same text for any chunk size.
CHUNK = 8


def supports(temperature: float, top_p: float | None, repetition_penalty: float) -> bool:
    """Whether :class:`MultiStep` can run these sampling options (top-p, the repetition penalty and a negative
    temperature, which ``stream`` samples from the unscaled logits, cannot)."""
    return temperature >= 0 and (top_p is None or top_p >= 1.0) and repetition_penalty == 1.0


class MultiStep:
    """``MultiStep(compiled, k)(token, cache, temperature, top_k, generator)``: the next ``k`` tokens (B, k)
    after ``token`` (B,), written into ``cache`` (``k`` positions). ``failed`` is set (and one warning
    logged) when compilation or a call fails; the caller then uses the one-step path."""

    def __init__(self, compiled: CompiledDecoder, k: int = CHUNK) -> None:
        self.compiled, self.k = compiled, k
        self.compile_seconds: dict[tuple, float] = {}
        self.failed = False
        step = types.FunctionType(MultiStep._steps.__code__.replace(), globals(), "_steps")
        self._fn = torch.compile(step, fullgraph=True, dynamic=False, options={"cpp_wrapper": True})

    @staticmethod
    def _steps(dec: CompiledDecoder, token, pos, ks, vs, noise, temperature, k: int, top_k: int):
        out = []
        for j in range(k):
            logits = CompiledDecoder._step(dec, token, pos + j, ks, vs).float()
            if noise is not None:
                logits = logits / temperature
                if top_k < logits.shape[-1]:
                    kth = torch.topk(logits, top_k).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                logits = logits - torch.log(-torch.log(noise[j]))  # Gumbel-max
            token = logits.argmax(-1)
            out.append(token)
        return torch.stack(out, 1)

    def run(self, token: torch.Tensor, cache: KVCache, temperature: float, top_k: int | None, generator) -> list | None:
        """:meth:`__call__`'s tokens of batch row 0 as a list, or None (logged once, ``failed`` set, ``cache``
        untouched) when compilation or the call fails."""
        try:
            return self(token, cache, temperature, top_k, generator)[0].tolist()
        except Exception as e:  # noqa: BLE001 — any compiler failure falls back to the one-step path
            why = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            log.warning(
                "gpt: %d-step compiled decoding unavailable (%s); decoding one step per call", self.k, why[:200]
            )
            self.failed = True
            return None

    @torch.no_grad()
    def __call__(
        self,
        token: torch.Tensor,
        cache: KVCache,
        temperature: float,
        top_k: int | None,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        pos, k = cache.length, self.k
        if not cache.rolling and pos + k > cache.capacity:
            raise ValueError(f"gpt: KV cache holds {cache.capacity} positions; {pos + k} requested")
        b, v = token.shape[0], self.compiled.cfg.vocab_size
        top = v if not top_k or temperature <= 0 else min(top_k, v)
        noise, temp = None, None
        if temperature > 0:
            temp = torch.tensor(float(temperature), device=token.device)  # a tensor: no recompilation per value
            noise = torch.rand((k, b, v), generator=generator, device="cpu" if generator is None else generator.device)
            noise = noise.clamp_min_(torch.finfo(noise.dtype).tiny).to(token.device)
        key = (b, temperature > 0, top)
        t0 = time.perf_counter()
        token = token.clone(memory_format=torch.contiguous_format)
        pos_t = torch.tensor(pos, device=token.device)
        out = self._fn(self.compiled, token, pos_t, cache.k, cache.v, noise, temp, k, top)
        if key not in self.compile_seconds:
            self.compile_seconds[key] = time.perf_counter() - t0
            log.info("gpt: %d-step decode compiled in %.1f s", k, self.compile_seconds[key])
        for i in range(len(cache.n)):
            cache.n[i] = pos + k
        return out


def multi_step_for(compiled: CompiledDecoder, k: int = CHUNK) -> MultiStep:
    """The :class:`MultiStep` of ``compiled`` (kept on it, with its compiled graphs and a fallback once taken)."""
    cached = compiled.__dict__.get("_multi")
    if cached is None or cached.k != k:
        cached = MultiStep(compiled, k)
        compiled.__dict__["_multi"] = cached
    return cached
