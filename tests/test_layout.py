"""trainer.memory_format: channels-last conv weights train the same model (to rounding), save and load like any
run, and ``auto`` measures both layouts on the run's own model, caches the answer and trains as that answer
given explicitly does."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import epochs_of, tiny_recipe

from polymodal import api
from polymodal.errors import ConfigError
from polymodal.kinds.supervised.predictor import RunPredictor
from polymodal.training import precision
from polymodal.training.layout import resolve_layout
from polymodal.training.precision import cache_file


def never() -> None:
    raise AssertionError("probed")


def test_fixed_settings_models_without_convolutions_and_torchrun_are_not_probed():
    conv = torch.nn.Conv2d(1, 4, 3)
    assert resolve_layout("channels_last", conv, never, "x", "fp32") == "channels_last"
    assert resolve_layout("auto", torch.nn.Linear(4, 2), never, "x", "fp32") == "contiguous"
    assert resolve_layout("auto", conv, never, "x", "fp32", distributed=True) == "contiguous"


def test_the_probe_chooses_by_the_measured_medians_and_caches_the_answer(monkeypatch):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8))
    x = torch.randn(4, 3, 12, 12)
    seen = []

    def step() -> None:
        seen.append(model[0].weight.is_contiguous(memory_format=torch.channels_last))
        model(x).pow(2).mean().backward()

    fake = {"contiguous": 1.0, "channels_last": 0.95}  # 5 % faster: under MIN_GAIN, stays contiguous
    monkeypatch.setattr(precision, "measured", lambda m, s, choices: ([s(c) for c in choices], fake)[1])
    assert resolve_layout("auto", model, step, "a", "fp32") == "contiguous" and seen == [False, True]
    fake.update(channels_last=0.5)
    assert resolve_layout("auto", model, step, "b", "fp32") == "channels_last"
    assert model[0].weight.is_contiguous()  # left contiguous: the caller applies the answer
    entries = [v for v in json.loads(cache_file().read_text()).values() if "layout" in v]
    assert [e["layout"] for e in entries[-2:]] == ["contiguous", "channels_last"]
    assert resolve_layout("auto", model, never, "b", "fp32") == "channels_last"  # from the cache


def test_a_real_probe_times_both_layouts_and_restores_state():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.BatchNorm2d(16), torch.nn.Dropout(0.5))
    x = torch.randn(8, 3, 32, 32)
    before, rng = {k: v.clone() for k, v in model.state_dict().items()}, torch.get_rng_state()
    choice = resolve_layout("auto", model, lambda: model(x).pow(2).mean().backward(), "real", "fp32")
    assert choice in ("contiguous", "channels_last")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert torch.equal(rng, torch.get_rng_state()) and all(p.grad is None for p in model.parameters())


def test_channels_last_trains_the_same_model_and_its_run_loads_and_predicts(manifest, tmp_path):
    nchw = api.train(tiny_recipe(manifest, epochs=2), tmp_path / "nchw")
    nhwc = api.train(tiny_recipe(manifest, epochs=2, memory_format="channels_last"), tmp_path / "nhwc")
    assert nhwc.model is not None
    convs = [m for m in nhwc.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    for a, b in zip(epochs_of(tmp_path / "nchw"), epochs_of(tmp_path / "nhwc"), strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)  # only rounding differs
    assert nchw.test["accuracy"] == pytest.approx(nhwc.test["accuracy"], abs=0.05)
    loaded = RunPredictor(tmp_path / "nhwc")  # weights saved contiguous, loaded into a fresh contiguous model
    assert all(p.is_contiguous() for p in loaded.model.parameters())
    trained = nhwc.model.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in loaded.model.state_dict().items())


def test_an_auto_run_trains_as_its_chosen_layout_does(manifest, tmp_path):
    api.train(tiny_recipe(manifest, epochs=2, memory_format="auto"), tmp_path / "auto")
    entry = [v for v in json.loads(cache_file().read_text()).values() if "layout" in v][-1]
    api.train(tiny_recipe(manifest, epochs=2, memory_format=entry["layout"]), tmp_path / "chosen")
    losses = [[r["train_loss"] for r in epochs_of(tmp_path / name)] for name in ("auto", "chosen")]
    assert losses[0] == losses[1]


def test_an_unknown_memory_format_is_one_config_error(manifest):
    with pytest.raises(ConfigError, match="memory_format"):
        api.load_recipe(tiny_recipe(manifest, memory_format="nhwc"))
