"""The compiled static-shape decode step: same tokens and logits as the eager Decoder, and a clean fallback."""

from __future__ import annotations

import logging

import pytest
import torch
from test_gpt_rolling import peaked

from polymodal.gpt.compile_policy import AUTO_COMPILE_TOKENS, wants_compile
from polymodal.gpt.compiled import CompiledDecoder, compiled_decoder_for
from polymodal.gpt.decode import Decoder
from polymodal.gpt.generate import beam_search, generate
from polymodal.gpt.multi import multi_step_for


def steps_match(model, steps: int) -> CompiledDecoder:
    """Decode ``steps`` tokens after a 3-token prompt with both decoders, each on its own cache; compare logits."""
    idx = torch.randint(model.cfg.vocab_size, (1, 3 + steps))
    a, b = model.new_cache(), model.new_cache()
    compiled, eager = compiled_decoder_for(model), Decoder(model)
    with torch.no_grad():
        model(idx[:, :3], cache=a)
        model(idx[:, :3], cache=b)
        for t in range(3, 3 + steps):
            x, y = compiled(idx[:, t], a), eager(idx[:, t], b)
            # The same products; sums in another order (attention over every slot, masked ones adding 0).
            assert torch.allclose(x, y, rtol=1e-4, atol=1e-4 * y.abs().max().item()), t
    assert not compiled.failed and compiled.compile_seconds is not None
    assert a.length == b.length == 3 + steps
    return compiled


def test_compiled_step_matches_the_decoder_through_a_rolling_cache_past_the_window():  # ~25 s cold, 4 s warm
    model = peaked(qk_norm=True, logit_softcap=5.0)  # rotary: the ring wraps 3 times in 24 steps (block 8)
    steps_match(model, 24)
    prompt = torch.randint(23, (1, 3))
    assert generate(model, prompt, 40, temperature=0.0, compile=True) == generate(
        model, prompt, 40, temperature=0.0, compile=False
    )


@pytest.mark.slow  # another compilation: ~20 s with an empty inductor cache
def test_compiled_step_matches_the_decoder_with_learned_positions_biases_and_relu2():
    model = peaked(positions="learned", bias=True, mlp="relu2", tie_weights=False)
    steps_match(model, 5)  # a plain cache: unfilled slots are masked
    prompt = torch.randint(23, (1, 3))
    assert generate(model, prompt, 20, temperature=0.0, compile=True) == generate(
        model, prompt, 20, temperature=0.0, compile=False
    )


def test_a_failing_compiler_falls_back_to_the_decoder_with_one_warning(caplog):
    model = peaked()
    prompt = torch.randint(23, (1, 3))
    want = generate(model, prompt, 12, temperature=0.0, compile=False)
    compiled = compiled_decoder_for(model)

    def broken(*args: object) -> torch.Tensor:
        raise RuntimeError("no C++ compiler\nsecond line")

    compiled._fn = broken
    multi = multi_step_for(compiled)
    multi._fn = broken  # the several-steps-per-call path first, then the one-step one
    with caplog.at_level(logging.WARNING, logger="polymodal.gpt"):
        got = generate(model, prompt, 12, temperature=0.0, compile=True)
        assert generate(model, prompt, 12, temperature=0.0, compile=True) == want  # stays on the fallback
    assert got == want and compiled.failed and multi.failed
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and all("RuntimeError: no C++ compiler)" in w and "\n" not in w for w in warnings)
    assert f"{multi.k}-step" in warnings[0] and "eager decoder" in warnings[1]


def test_compile_option_resolves_auto_by_length_and_rejects_other_values():
    assert wants_compile(True, 1) and not wants_compile(False, 10**6)
    assert not wants_compile("auto", 500) and wants_compile("auto", AUTO_COMPILE_TOKENS)
    with pytest.raises(ValueError, match="compile must be true, false or 'auto'"):
        wants_compile("yes", 10)


@pytest.mark.slow  # two compilations (batch 1, then 3 beams): ~30 s with an empty inductor cache
def test_compiled_step_gives_the_same_beams_and_works_under_inference_mode():
    model = peaked(qk_norm=True)
    prompt = torch.randint(23, (1, 3))
    want = beam_search(model, prompt, 20, beams=3, compile=False)  # past the window: the ring wraps
    assert beam_search(model, prompt, 20, beams=3, compile=True) == want  # the cache is reordered each step
    greedy = generate(model, prompt, 30, temperature=0.0, compile=False)
    with torch.inference_mode():
        assert generate(model, prompt, 30, temperature=0.0, compile=True) == greedy
    assert not compiled_decoder_for(model).failed
