"""Rotary positions, the rolling KV cache past block_size, and the lean one-token decoder."""

from __future__ import annotations

import pytest
import torch

from polymodal.errors import ConfigError
from polymodal.gpt.cache import KVCache
from polymodal.gpt.decode import Decoder
from polymodal.gpt.generate import Stepper, generate
from polymodal.gpt.model import GPT, GPTConfig
from polymodal.kinds.lm.recipe import parse_lm_recipe


def peaked(**over: object) -> GPT:
    """A tiny model whose weights are scaled up: its logits are far apart, so greedy choices are not decided by
    float rounding (a fresh model's near-uniform logits would make token parity a coin toss)."""
    torch.manual_seed(0)
    cfg = {"vocab_size": 23, "block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 16, "positions": "rotary", **over}
    model = GPT(GPTConfig(**cfg)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(20)
    return model


def test_rolling_cache_keeps_the_last_positions_in_order():
    cache = KVCache(4, rolling=True)
    for t in range(7):  # one position at a time, then a chunk of three that wraps around the ring
        cache.write(0, torch.full((1, 1, 1, 2), float(t)), torch.zeros(1, 1, 1, 2))
    cache.write(0, torch.arange(7.0, 10.0).view(1, 1, 3, 1).expand(1, 1, 3, 2), torch.zeros(1, 1, 3, 2))
    keys, _ = cache.past(0)
    assert cache.length == 10 and keys[0, 0, :, 0].tolist() == [6.0, 7.0, 8.0, 9.0]
    with pytest.raises(ValueError, match="holds 4 positions"):
        KVCache(4).write(0, torch.zeros(1, 1, 5, 2), torch.zeros(1, 1, 5, 2))


@pytest.mark.parametrize("prompt_len", [3, 30])
def test_greedy_generation_past_the_window_is_identical_with_and_without_the_rolling_cache(prompt_len):
    model = peaked(qk_norm=True)
    prompt = torch.randint(23, (1, prompt_len))
    cached = generate(model, prompt, 40, temperature=0.0, use_cache=True)  # 5× block_size past the prompt
    uncached = generate(model, prompt, 40, temperature=0.0, use_cache=False)
    assert cached == uncached and len(cached) == 40


def test_rolling_cache_logits_match_the_sliding_window_reference_and_not_a_cropped_rerun():
    model = peaked()
    idx = torch.randint(23, (2, 40))
    cached, reference = Stepper(model, None, use_cache=True), Stepper(model, None, use_cache=False)
    with torch.no_grad():
        assert torch.allclose(cached(idx[:, :5], 5), reference(idx[:, :5], 5), atol=1e-3)
        for t in range(5, 40):
            a, b = cached(idx[:, : t + 1], 1), reference(idx[:, : t + 1], 1)
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-3), t
        # Re-running only the last block_size tokens is a different function (shorter contexts in layer 2):
        cropped = model(idx[:, -8:], start=32)[0][:, -1]
    assert (cropped - a).abs().max() > 1e-2


@pytest.mark.parametrize(
    "over",
    [
        {"positions": "learned"},
        {"positions": "sinusoidal", "bias": True, "mlp": "relu2"},
        {"qk_norm": True, "logit_softcap": 5.0, "tie_weights": False},
    ],
)
def test_one_token_decoder_matches_the_cached_forward(over):
    model = peaked(**over)
    idx = torch.randint(23, (3, 8))
    a, b = model.new_cache(), model.new_cache()
    with torch.no_grad():
        model(idx[:, :4], cache=a)
        model(idx[:, :4], cache=b)
        decode = Decoder(model)
        for t in range(4, 8):
            step = decode(idx[:, t], a)
            full = model(idx[:, t : t + 1], cache=b)[0][:, -1]
            assert torch.allclose(step, full, rtol=1e-5, atol=1e-3)
    assert a.length == b.length == 8


def test_rotary_tables_grow_and_training_still_works_after_generation():
    model = peaked()
    generate(model, torch.zeros(1, 1, dtype=torch.long), 20)  # positions up to 20 > block_size 8
    assert model.rotary is not None and model.rotary.cos.shape[0] >= 21
    model.train()
    idx = torch.randint(23, (2, 8))
    model(idx, targets=idx)[1].backward()  # tables grown under no_grad/inference are usable in autograd


def test_rotary_needs_an_even_head_width():
    with pytest.raises(ValueError, match="even"):
        GPT(GPTConfig(n_embd=12, n_head=4, positions="rotary"))
    raw = {"name": "x", "kind": "lm", "model": {"n_embd": 12, "n_head": 4, "positions": "rotary"}}
    with pytest.raises(ConfigError, match=r"model: positions: rotary .* must be even; change n_embd or n_head"):
        parse_lm_recipe(raw)
    with pytest.raises(ValueError, match="start= needs positions: rotary"):
        GPT(GPTConfig(n_layer=1)).eval()(torch.zeros(1, 2, dtype=torch.long), start=3)


def test_the_decoder_is_kept_per_model_and_rebuilt_after_the_weights_change():
    model = peaked()
    prompt = torch.randint(23, (1, 3))
    before = generate(model, prompt, 12, temperature=0.0)
    kept = model.__dict__["_decoder"][1]
    assert generate(model, prompt, 12, temperature=0.0) == before and model.__dict__["_decoder"][1] is kept
    with torch.no_grad():
        model.blocks[0].mlp[0].weight.mul_(-1.0)  # an in-place change, as an optimiser step makes
    after = generate(model, prompt, 12, temperature=0.0)
    assert model.__dict__["_decoder"][1] is not kept
    assert after == generate(model, prompt, 12, temperature=0.0, use_cache=False)
