"""Generation from a :class:`GPT`: sampling (temperature, top-k, top-p, repetition penalty, stop sequences,
streaming) and beam search, with or without the KV cache.

With the cache, the prompt (and prefix) is run once and each new token costs one position; without it,
every step reruns the context. Both paths compute the same function, so they give the same tokens:

- learned or sinusoidal positions: when the context outgrows ``block_size`` it is cropped to the last
  ``block_size`` positions (nanoGPT's ``generate``), the cached path by running the cropped context afresh;
- rotary positions (no prefix): the cache rolls (:class:`~polymodal.gpt.cache.KVCache` with ``rolling``), so
  each token attends to the last ``block_size`` positions *in every layer*, and the keys it reads in layer
  2 and above were computed when those tokens were new, from their own windows. Re-running only the last
  ``block_size`` tokens would give them shorter contexts and is *not* that function. The exact uncached
  equivalent is the sliding-window forward over the last ``n_layer·(block_size − 1) + 1`` tokens — the
  receptive field of the newest token through ``n_layer`` windows, so older tokens cannot matter — at their
  absolute positions (``start=``), which is what the uncached path runs. Rotary attention depends only on
  offsets, so positions re-based to 0 would be the same function in exact arithmetic; keeping the absolute
  ones makes the two paths apply the same rotations and leaves only the rounding of different kernel shapes.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from polymodal.gpt.compile_policy import wants_compile
from polymodal.gpt.compiled import CompiledDecoder, compiled_decoder_for
from polymodal.gpt.decode import Decoder, decoder_for
from polymodal.gpt.model import GPT, KVCache
from polymodal.gpt.multi import CHUNK, multi_step_for, supports


def process_logits(
    logits: torch.Tensor,
    context: torch.Tensor,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    repetition_penalty: float,
) -> torch.Tensor:
    """(B, V) next-token logits -> adjusted logits (-inf where a token is ruled out)."""
    logits = logits.float()
    if repetition_penalty != 1.0:
        logits = logits.clone()
        # CTRL (Keskar et al. 2019): make every token already in the context less likely.
        seen = torch.gather(logits, 1, context)
        seen = torch.where(seen > 0, seen / repetition_penalty, seen * repetition_penalty)
        logits.scatter_(1, context, seen)
    if temperature > 0:
        logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:  # k ≥ vocabulary rules nothing out
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        order = logits.argsort(dim=-1, descending=True)
        probs = logits.gather(1, order).softmax(-1)
        drop = probs.cumsum(-1) - probs > top_p  # keep the smallest set whose mass reaches top_p
        logits = logits.scatter(1, order, logits.gather(1, order).masked_fill(drop, float("-inf")))
    return logits


class Stepper:
    """Next-token logits for a growing context, with or without the KV cache (see the module docstring)."""

    def __init__(
        self,
        model: GPT,
        prefix: torch.Tensor | None,
        use_cache: bool,
        memory: torch.Tensor | None = None,
        compile: bool = False,
    ) -> None:
        self.model, self.prefix, self.use_cache, self.memory, self.compile = model, prefix, use_cache, memory, compile
        cfg = model.cfg
        self.room = cfg.block_size - (0 if prefix is None else prefix.shape[1])
        if self.room < 1:
            raise ValueError("gpt: the prefix fills the whole block_size; nothing left for tokens")
        # A prefix must stay in view, so a prefixed rotary model crops and re-runs like an absolute one.
        self.rolling = model.rotary is not None and prefix is None
        self.reach = cfg.n_layer * (cfg.block_size - 1) + 1  # the newest token's receptive field
        self.cache: KVCache | None = None
        self._decoder: Decoder | CompiledDecoder | None = None

    def decode(self, token: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """One new token after a filled cache, without memory, through the model's lean :class:`Decoder`
        (or its compiled static-shape step, :class:`CompiledDecoder`, with ``compile``)."""
        if self._decoder is None:
            self._decoder = compiled_decoder_for(self.model) if self.compile else decoder_for(self.model)
        return self._decoder(token, cache)

    def __call__(self, idx: torch.Tensor, new: int) -> torch.Tensor:
        """Logits (B, V) after ``idx`` (B, T), whose last ``new`` tokens have not been seen yet."""
        m, model = self.memory, self.model
        if self.rolling and not self.use_cache:
            r = min(idx.shape[1], self.reach)
            return model(idx[:, -r:], memory=m, start=idx.shape[1] - r)[0][:, -1]
        if self.rolling:
            if self.cache is None:  # the whole prompt from position 0; then one token per step, forever
                self.cache = model.new_cache(rolling=True)
                return model(idx, cache=self.cache, memory=m)[0][:, -1]
            if new == 1 and m is None:
                return self.decode(idx[:, -1], self.cache)
            return model(idx[:, -new:], cache=self.cache, memory=m)[0][:, -1]
        if not self.use_cache:
            return model(idx[:, -self.room :], prefix=self.prefix, memory=m)[0][:, -1]
        if self.cache is None or self.cache.length + new > model.cfg.block_size:
            # First call, or the context outgrew the block: run it afresh.
            self.cache = model.new_cache(rolling=False)
            return model(idx[:, -self.room :], prefix=self.prefix, cache=self.cache, memory=m)[0][:, -1]
        if new == 1 and m is None:
            return self.decode(idx[:, -1], self.cache)
        return model(idx[:, -new:], cache=self.cache, memory=m)[0][:, -1]


@torch.no_grad()
def stream(
    model: GPT,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    stop: list[list[int]] | None = None,
    prefix: torch.Tensor | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    compile: bool | str = "auto",
) -> Iterator[int]:
    """Yield new token ids one at a time for a single prompt ``idx`` (1, T).

    ``temperature`` 0 is greedy. Generation ends after ``max_new_tokens`` or when the output ends with one
    of the ``stop`` sequences (the stop tokens are yielded too; callers trim them). ``compile``: decode
    through the compiled step (:mod:`polymodal.gpt.compiled`; True, False, or "auto": only for calls of at
    least ``AUTO_COMPILE_TOKENS`` tokens, where its compile time pays off). Compiled, with a rolling cache and
    no top-p or repetition penalty, tokens come ``CHUNK`` per compiled call (:mod:`polymodal.gpt.multi`), so they
    arrive in bursts; sampled ones are then other draws (same distribution) than without compiling.
    """
    model.eval()
    idx = idx.to(model.lm_head.weight.device)  # a prompt encoded on the CPU, a model on a GPU
    step = Stepper(model, prefix, use_cache, compile=wants_compile(compile, max_new_tokens))
    out: list[int] = []
    new = idx.shape[1]
    # Compiled, rolling cache, options the graph can sample: CHUNK tokens per compiled call (polymodal.gpt.multi;
    # sampled tokens follow the same distribution as below, from other draws). A chunk's surplus tokens stay in
    # the cache, which ends with this call.
    multi = step.compile and step.rolling and use_cache and supports(temperature, top_p, repetition_penalty)
    compiled = compiled_decoder_for(model) if multi else None
    while len(out) < max_new_tokens:
        if compiled is not None and out and not compiled.failed:
            chunk = multi_step_for(compiled, CHUNK).run(idx[:, -1], step.cache, temperature, top_k, generator)
            if chunk is not None:
                idx = torch.cat([idx, torch.tensor([chunk], device=idx.device)], dim=1)
                for t in chunk:
                    out.append(t)
                    yield t
                    if len(out) == max_new_tokens or (stop and any(out[-len(s) :] == s for s in stop)):
                        return
                continue
            compiled = None
        logits = process_logits(step(idx, new), idx, temperature, top_k, top_p, repetition_penalty)
        if temperature == 0:
            nxt = logits.argmax(-1, keepdim=True)
        else:
            probs = logits.softmax(-1)
            if generator is not None and generator.device != probs.device:  # a seeded CPU generator draws on the CPU
                probs = probs.cpu()
            nxt = torch.multinomial(probs, 1, generator=generator).to(idx.device)
        idx, new = torch.cat([idx, nxt], dim=1), 1
        out.append(int(nxt))
        yield out[-1]
        if stop and any(len(s) <= len(out) and out[-len(s) :] == s for s in stop):
            return


def generate(model: GPT, idx: torch.Tensor, max_new_tokens: int, **kwargs: object) -> list[int]:
    """All of :func:`stream`'s tokens as a list."""
    return list(stream(model, idx, max_new_tokens, **kwargs))  # type: ignore[arg-type]


@torch.no_grad()
def beam_search(
    model: GPT,
    idx: torch.Tensor,
    max_new_tokens: int,
    beams: int = 4,
    length_penalty: float = 1.0,
    stop: list[list[int]] | None = None,
    prefix: torch.Tensor | None = None,
    use_cache: bool = True,
    compile: bool | str = "auto",
) -> list[int]:
    """The highest-scoring continuation of ``idx`` (1, T) among ``beams`` hypotheses kept per step.

    Score: summed log-probability / length^``length_penalty``. A hypothesis that ends with a stop sequence
    is finished; search ends when ``beams`` are finished or after ``max_new_tokens``. ``compile``: as for
    :func:`stream`.
    """
    model.eval()
    seqs = idx.repeat(beams, 1)  # (K, T)
    pre = None if prefix is None else prefix.repeat(beams, 1, 1)
    step = Stepper(model, pre, use_cache, compile=wants_compile(compile, max_new_tokens))
    scores = torch.full((beams,), float("-inf"))
    scores[0] = 0.0  # the K copies are identical: start from one so the first step does not pick K times the same
    finished: list[tuple[float, list[int]]] = []
    new = idx.shape[1]
    start = idx.shape[1]
    for t in range(max_new_tokens):
        logp = step(seqs, new).float().log_softmax(-1)  # (K, V)
        total = (scores.unsqueeze(1) + logp).view(-1)
        top = total.topk(2 * beams)
        v = logp.shape[1]
        keep_rows, keep_tok, keep_scores = [], [], []
        for s, flat in zip(top.values.tolist(), top.indices.tolist(), strict=True):
            row, tok = divmod(flat, v)
            cand = seqs[row, start:].tolist() + [tok]
            if stop and any(len(q) <= len(cand) and cand[-len(q) :] == q for q in stop):
                finished.append((s / len(cand) ** length_penalty, cand))
            else:
                keep_rows.append(row)
                keep_tok.append(tok)
                keep_scores.append(s)
            if len(keep_rows) == beams:
                break
        if len(finished) >= beams or not keep_rows:
            break
        index = torch.tensor(keep_rows)
        seqs = torch.cat([seqs[index], torch.tensor(keep_tok).unsqueeze(1)], dim=1)
        scores = torch.tensor(keep_scores)
        if step.cache is not None:
            step.cache.reorder(index)
        new = 1
        if t == max_new_tokens - 1:
            break
    for s, row in zip(scores.tolist(), seqs[:, start:].tolist(), strict=True):
        finished.append((s / max(1, len(row)) ** length_penalty, row))
    return max(finished, key=lambda f: f[0])[1]
