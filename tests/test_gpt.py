"""The GPT decoder: causality, KV-cache parity, sampling controls and beam search."""

from __future__ import annotations

import pytest
import torch

from polymodal.gpt.generate import beam_search, generate, process_logits, stream
from polymodal.gpt.model import GPT, GPTConfig, KVCache


def tiny(positions: str = "learned", block: int = 32) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=23, block_size=block, n_layer=2, n_head=2, n_embd=16, positions=positions)).eval()


def test_forward_shapes_loss_and_tied_weights():
    model = tiny()
    idx = torch.randint(23, (3, 10))
    logits, loss = model(idx, targets=idx)
    assert logits.shape == (3, 10, 23) and loss.ndim == 0
    assert abs(loss.item() - torch.log(torch.tensor(23.0)).item()) < 0.5  # near uniform at init
    assert model.lm_head.weight is model.wte.weight


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rotary"])
def test_future_tokens_do_not_change_past_logits(positions):
    model = tiny(positions)
    idx = torch.randint(23, (1, 12))
    other = idx.clone()
    other[0, 8:] = (other[0, 8:] + 1) % 23
    assert torch.allclose(model(idx)[0][:, :8], model(other)[0][:, :8], atol=1e-6)


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_cached_prefill_and_steps_match_the_full_forward(positions):
    model = tiny(positions)
    idx = torch.randint(23, (2, 12))
    full = model(idx)[0]
    cache = KVCache(model.cfg.block_size)
    a = model(idx[:, :5], cache=cache)[0]
    b = model(idx[:, 5:9], cache=cache)[0]  # several new tokens after a cached past
    c = model(idx[:, 9:10], cache=cache)[0]
    assert torch.allclose(torch.cat([a, b, c], 1), full[:, :10], atol=1e-5)


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_greedy_generation_is_identical_with_and_without_the_cache(positions):
    model = tiny(positions, block=16)
    prompt = torch.randint(23, (1, 5))
    # 40 new tokens: past block_size 16, so the cropping path is exercised as well
    with_cache = generate(model, prompt, 40, temperature=0.0, use_cache=True)
    without = generate(model, prompt, 40, temperature=0.0, use_cache=False)
    assert with_cache == without and len(with_cache) == 40


def test_sampling_is_seeded_and_stops_on_a_stop_sequence():
    model = tiny()
    prompt = torch.randint(23, (1, 4))
    a = generate(model, prompt, 20, temperature=1.0, generator=torch.Generator().manual_seed(1))
    b = generate(model, prompt, 20, temperature=1.0, generator=torch.Generator().manual_seed(1))
    assert a == b
    stop = [a[5:7]]
    cut = generate(model, prompt, 20, temperature=1.0, stop=stop, generator=torch.Generator().manual_seed(1))
    assert cut[-2:] == stop[0] and len(cut) <= 7
    assert next(iter(stream(model, prompt, 5, temperature=0.0))) == generate(model, prompt, 1, temperature=0.0)[0]


def test_logit_processing():
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, -1.0]])
    ctx = torch.tensor([[0, 4]])
    k = process_logits(logits, ctx, 1.0, 2, None, 1.0)
    assert torch.isinf(k[0, 2:]).all() and torch.isfinite(k[0, :2]).all()
    p = process_logits(logits, ctx, 1.0, None, 0.5, 1.0)
    assert torch.isfinite(p[0, 0]) and torch.isinf(p[0, 1:]).all()  # token 0 alone holds > 50% of the mass
    r = process_logits(logits, ctx, 1.0, None, None, 2.0)
    assert r[0, 0] == 2.0 and r[0, 4] == -2.0 and r[0, 1] == 3.0


def test_beam_search_scores_at_least_as_well_as_greedy():
    model = tiny()
    prompt = torch.randint(23, (1, 4))

    @torch.no_grad()
    def logprob(seq: list[int]) -> float:
        full = torch.cat([prompt, torch.tensor([seq])], 1)
        lp = model(full)[0][0, prompt.shape[1] - 1 : -1].log_softmax(-1)
        return float(lp.gather(1, torch.tensor(seq).unsqueeze(1)).sum())

    greedy = generate(model, prompt, 6, temperature=0.0)
    beam = beam_search(model, prompt, 6, beams=4, length_penalty=0.0)
    assert len(beam) == 6 and logprob(beam) >= logprob(greedy) - 1e-5
    assert beam_search(model, prompt, 6, beams=4, length_penalty=0.0, use_cache=False) == beam


def test_cross_attention_decoder_reads_memory_and_caches_consistently():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=23, block_size=16, n_layer=2, n_head=2, n_embd=16, cross_attention=True)).eval()
    idx = torch.randint(23, (2, 8))
    mem = torch.randn(2, 3, 16)
    full = model(idx, memory=mem)[0]
    assert not torch.allclose(full, model(idx, memory=mem + 1.0)[0])  # the memory matters
    cache = KVCache(model.cfg.block_size)
    steps = [model(idx[:, :5], cache=cache, memory=mem)[0]] + [
        model(idx[:, t : t + 1], cache=cache, memory=mem)[0] for t in range(5, 8)
    ]
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)
    with pytest.raises(ValueError, match="cross_attention"):
        tiny()(idx, memory=mem)


def test_precomputed_embeddings_match_token_ids_and_carry_spliced_inputs():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=1, n_head=2, n_embd=16)).eval()
    idx = torch.randint(0, 20, (2, 8))
    assert torch.equal(model(idx)[0], model(idx, embeds=model.wte(idx))[0])
    spliced = model.wte(idx).clone()
    spliced[:, 3] = torch.randn(2, 16)  # e.g. a projected image where the prompt said <image>
    logits = model(idx, embeds=spliced)[0]
    assert torch.equal(logits[:, :3], model(idx)[0][:, :3]) and not torch.allclose(logits[:, 3:], model(idx)[0][:, 3:])
