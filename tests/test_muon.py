"""trainer.optimizer: muon — Muon for hidden matrices, AdamW for the rest, one optimiser to the Trainer."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from polymodal.config import TrainerConfig
from polymodal.errors import ConfigError
from polymodal.gpt.model import GPT, GPTConfig
from polymodal.kinds.lm.recipe import parse_lm_recipe
from polymodal.training.checkpoint import optimizer_from_flat, optimizer_to_flat
from polymodal.training.optim import MuonAdamW, build_optimizer


def model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, positions="rotary"))


def step(net: GPT, opt: MuonAdamW, seed: int) -> float:
    idx = torch.randint(11, (4, 8), generator=torch.Generator().manual_seed(seed))
    loss = net(idx, targets=idx.roll(1, 1))[1]
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def test_muon_owns_the_block_matrices_and_adamw_the_rest():
    net = model()
    opt = build_optimizer(net, TrainerConfig(optimizer="muon", muon_ns_steps=3, lr=0.02))
    assert isinstance(opt, MuonAdamW)
    muon, adamw = opt.optimizers
    assert isinstance(muon, torch.optim.Muon) and muon.param_groups[0]["ns_steps"] == 3
    names = {id(p): n for n, p in net.named_parameters()}
    owned = sorted(names[id(p)] for g in muon.param_groups for p in g["params"])
    assert owned == sorted(n for n, p in net.named_parameters() if n.startswith("blocks.") and p.ndim == 2)
    rest = {names[id(p)] for g in adamw.param_groups for p in g["params"]}
    assert "wte.weight" in rest  # the (tied) embedding/output matrix is a lookup, not a hidden transform
    losses = [step(net, opt, s % 2) for s in range(12)]
    assert losses[-1] < losses[0] - 0.3


def test_muon_state_survives_a_checkpoint_round_trip():
    net = model()
    opt = build_optimizer(net, TrainerConfig(optimizer="muon"))
    step(net, opt, 0)
    tensors, meta = optimizer_to_flat(opt)  # type: ignore[arg-type]
    twin = copy.deepcopy(net)
    opt2 = build_optimizer(twin, TrainerConfig(optimizer="muon"))
    # cloned, as if read from disk: load_state_dict may keep the very tensors it is given
    optimizer_from_flat(opt2, {k: v.clone() for k, v in tensors.items()}, meta)  # type: ignore[arg-type]
    step(net, opt, 1)
    step(twin, opt2, 1)
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)


def test_muon_mistakes_are_one_line_errors():
    with pytest.raises(ConfigError, match="no hidden nn.Linear weight matrix in this model; use adamw"):
        build_optimizer(nn.Sequential(nn.Embedding(5, 4)), TrainerConfig(optimizer="muon"))
    raw = {"name": "x", "kind": "lm", "trainer": {"optimizer": "muon", "muon_ns_steps": 0}}
    with pytest.raises(ConfigError, match="muon_ns_steps") as err:
        parse_lm_recipe(raw)
    assert "\n" not in str(err.value)
