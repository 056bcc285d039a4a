"""Several compiled decode steps per call (polymodal.gpt.multi): greedy tokens as the one-step path, stop
sequences and lengths that are not a multiple of the chunk, seeded sampling that repeats itself and draws from
softmax(logits / temperature) after top-k."""

from __future__ import annotations

import pytest
import torch
from test_gpt_rolling import peaked

from polymodal.gpt.compiled import compiled_decoder_for
from polymodal.gpt.generate import generate, stream
from polymodal.gpt.multi import CHUNK, multi_step_for, supports


def test_greedy_chunks_give_the_one_step_tokens_past_the_window_and_at_any_length():  # ~70 s cold, ~10 s warm
    model = peaked()
    prompt = torch.randint(23, (1, 3))
    for n in (1, 2, CHUNK + 1, 5 * CHUNK + 3):  # 5 chunks wrap the ring of 8 several times
        assert generate(model, prompt, n, temperature=0.0, compile=True) == generate(
            model, prompt, n, temperature=0.0, compile=False
        ), n
    multi = multi_step_for(compiled_decoder_for(model))
    assert not multi.failed and multi.compile_seconds


def test_a_stop_sequence_inside_a_chunk_ends_where_the_one_step_path_ends():
    model = peaked()
    prompt = torch.randint(23, (1, 3))
    full = generate(model, prompt, 30, temperature=0.0, compile=False)
    stop = [full[10:12]]  # tokens 11-12: inside the second chunk
    want = generate(model, prompt, 30, temperature=0.0, stop=stop, compile=False)
    assert generate(model, prompt, 30, temperature=0.0, stop=stop, compile=True) == want
    assert list(stream(model, prompt, 30, temperature=0.0, stop=stop, compile=True))[-2:] == stop[0]


@pytest.mark.slow  # each compiles its own sampled graph: ~40-70 s with an empty inductor cache
def test_seeded_sampling_repeats_itself_and_top_k_1_is_greedy():
    model = peaked()
    prompt = torch.randint(23, (1, 3))

    def sample(seed: int, **kw: object) -> list[int]:
        gen = torch.Generator().manual_seed(seed)
        return generate(model, prompt, 2 * CHUNK + 5, temperature=0.9, generator=gen, compile=True, **kw)

    assert sample(3) == sample(3) and len(sample(3)) == 2 * CHUNK + 5
    greedy = generate(model, prompt, 2 * CHUNK + 5, temperature=0.0, compile=False)
    assert sample(4, top_k=1) == greedy


@pytest.mark.slow  # each compiles its own sampled graph: ~40-70 s with an empty inductor cache
def test_sampled_tokens_follow_softmax_of_the_logits_with_temperature_and_top_k():
    torch.manual_seed(0)
    model = peaked(n_embd=8)
    with torch.no_grad():
        for p in model.parameters():
            p.div_(40)  # flatter logits than peaked(): several tokens with sizeable probability
    prompt = torch.randint(23, (1, 3))
    cache = model.new_cache(rolling=True)
    with torch.no_grad():
        logits = model(prompt, cache=cache)[0][:, -1]
    token = logits.argmax(-1)
    with torch.no_grad():
        nxt = model(token.view(1, 1), cache=_copy(cache))[0][0, -1]
    temperature, top_k = 0.7, 5
    scaled = nxt / temperature
    scaled = scaled.masked_fill(scaled < scaled.topk(top_k).values[-1], float("-inf"))
    want = scaled.softmax(-1)
    multi = multi_step_for(compiled_decoder_for(model))
    gen = torch.Generator().manual_seed(0)
    n = 3000
    counts = torch.zeros(23)
    for _ in range(n):
        counts[multi(token, _copy(cache), temperature, top_k, gen)[0, 0]] += 1
    assert counts[want == 0].sum() == 0  # nothing outside the top k
    # 3000 draws: each frequency within 4.5 standard errors of its probability
    se = (want * (1 - want) / n).sqrt()
    assert ((counts / n - want).abs() <= 4.5 * se + 1e-6).all(), (counts / n, want)


def _copy(cache):
    out = type(cache)(cache.capacity, rolling=cache.rolling)
    out.k, out.v, out.n = [k.clone() for k in cache.k], [v.clone() for v in cache.v], list(cache.n)
    return out


def test_options_the_graph_cannot_sample_stay_on_the_one_step_path():
    assert supports(0.0, None, 1.0) and supports(0.8, 1.0, 1.0)
    assert not supports(0.8, 0.9, 1.0) and not supports(0.8, None, 1.2) and not supports(-1.0, None, 1.0)
