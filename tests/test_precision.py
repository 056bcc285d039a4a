"""trainer.precision: auto measures bf16 against fp32 on the run's own model, caches the answer, and leaves the
run exactly as the chosen precision given explicitly would have trained it."""

from __future__ import annotations

import json

import torch
from conftest import epochs_of, tiny_recipe

from polymodal import api
from polymodal.training.precision import cache_file, resolve_precision


def test_a_fixed_setting_is_kept_and_torchrun_on_cpus_is_fp32():
    model = torch.nn.Linear(4, 2)
    never = lambda p: (_ for _ in ()).throw(AssertionError("probed"))  # noqa: E731
    assert resolve_precision("bf16", torch.device("cpu"), model, never, "x") == "bf16"
    assert resolve_precision("auto", torch.device("cpu"), model, never, "x", distributed=True) == "fp32"


def test_the_probe_is_cached_and_leaves_model_rng_and_grads_as_they_were():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.BatchNorm1d(64), torch.nn.Dropout(0.5))
    x = torch.randn(32, 64)
    calls = []

    def step(precision: str) -> None:
        calls.append(precision)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(x)
        out.float().pow(2).mean().backward()

    before, rng = {k: v.clone() for k, v in model.state_dict().items()}, torch.get_rng_state()
    choice = resolve_precision("auto", torch.device("cpu"), model, step, "32x64")
    assert choice in ("fp32", "bf16") and calls.count("fp32") == calls.count("bf16") >= 5
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # BatchNorm statistics too
    assert torch.equal(rng, torch.get_rng_state()) and all(p.grad is None for p in model.parameters())
    entry = [v for v in json.loads(cache_file().read_text()).values() if "precision" in v][-1]
    assert entry["precision"] == choice and entry["fp32_ms"] > 0 and entry["bf16_ms"] > 0
    calls.clear()
    assert resolve_precision("auto", torch.device("cpu"), model, step, "32x64") == choice and not calls


def test_an_auto_run_trains_as_its_chosen_precision_does(manifest, tmp_path):
    auto = api.train(tiny_recipe(manifest, epochs=2, precision="auto"), tmp_path / "auto")
    entry = [v for v in json.loads(cache_file().read_text()).values() if "precision" in v]
    chosen = api.train(tiny_recipe(manifest, epochs=2, precision=entry[-1]["precision"]), tmp_path / "chosen")
    assert [r["train_loss"] for r in epochs_of(tmp_path / "auto")] == [
        r["train_loss"] for r in epochs_of(tmp_path / "chosen")
    ]
    assert auto.test["accuracy"] == chosen.test["accuracy"]
