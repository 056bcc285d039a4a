"""Checkpoints and resume: a SIGKILLed run continues to exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import assert_same_run, epochs_of, tiny_recipe
from safetensors.torch import load_file
from torch import nn

from polymodal import api
from polymodal.api import load_recipe
from polymodal.errors import CheckpointError
from polymodal.model import build_model
from polymodal.training.checkpoint import (
    load_checkpoint,
    optimizer_from_flat,
    optimizer_to_flat,
    save_checkpoint,
)
from polymodal.training.optim import build_optimizer


def cli(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "polymodal", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_sigkill_then_resume_matches_uninterrupted_run(manifest, tmp_path):
    recipe = tiny_recipe(manifest, epochs=30, checkpoint_every=3)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))

    killed = tmp_path / "killed"
    proc = cli("train", str(path), "--run-dir", str(killed))
    deadline = time.monotonic() + 240  # generous: a busy shared machine can take a minute just to start Python
    while not (killed / "checkpoints" / "latest").exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "metrics.json").exists(), "the run finished before it could be killed"
    done_before = len(epochs_of(killed)) if (killed / "metrics.jsonl").exists() else 0
    assert done_before < 30
    # what the kill left is loadable as it stands
    saved, meta = load_recipe(killed / "recipe.yaml"), json.loads((killed / "meta.json").read_text())
    model = build_model(saved, meta["in_shapes"], meta["target"], meta["contexts"])
    assert load_checkpoint(killed / "checkpoints", model, build_optimizer(model, saved.trainer))["step"] > 0
    with open(killed / "metrics.jsonl", "a") as f:  # and a kill while appending an epoch's line tears it
        f.write('{"epoch": 31, "step": 9')

    resumed = cli("train", "--resume", "--run-dir", str(killed))
    assert resumed.wait(timeout=900) == 0, resumed.stderr.read()
    straight = tmp_path / "straight"
    full = cli("train", str(path), "--run-dir", str(straight))
    assert full.wait(timeout=900) == 0, full.stderr.read()

    assert [r["epoch"] for r in epochs_of(killed)] == list(range(1, 31))
    assert_same_run(killed, straight)
    # every checkpoint left behind is complete and loadable
    predictor = api.load(killed)
    model = predictor.model
    opt = build_optimizer(model, predictor.recipe.trainer)
    for folder in (killed / "checkpoints").glob("step-*"):
        (killed / "checkpoints" / "probe").mkdir(exist_ok=True)
        (killed / "checkpoints" / "probe" / "latest").write_text(folder.name)
        os.symlink(folder, killed / "checkpoints" / "probe" / folder.name)
        assert load_checkpoint(killed / "checkpoints" / "probe", model, opt)["step"] > 0


def kill_after_first_checkpoint(run: Path, *args: str) -> None:
    """Start ``polymodal ARGS --run-dir RUN``, SIGKILL it as soon as its first checkpoint is complete, and check
    that it died before finishing."""
    proc = cli(*args, "--run-dir", str(run))
    deadline = time.monotonic() + 240
    while not (run / "checkpoints" / "latest").exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "metrics.json").exists(), "the run finished before it could be killed"


def resume_and_run_straight(killed: Path, straight: Path, *args: str) -> None:
    resumed = cli("train", "--resume", "--run-dir", str(killed))
    assert resumed.wait(timeout=900) == 0, resumed.stderr.read()
    full = cli(*args, "--run-dir", str(straight))
    assert full.wait(timeout=900) == 0, full.stderr.read()


def kill_resume_and_compare(raw: dict, tmp_path: Path, keys: tuple[str, ...]) -> None:
    """Train recipe ``raw`` (8 epochs) killed after its first checkpoint then resumed, and straight through: every
    epoch's ``keys`` and the final weights agree."""
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    kill_after_first_checkpoint(killed, "train", str(path))
    resume_and_run_straight(killed, straight, "train", str(path))
    a, b = epochs_of(killed), epochs_of(straight)
    assert [r["epoch"] for r in a] == list(range(1, 9))
    for ra, rb in zip(a, b, strict=True):
        for key in keys:
            assert ra[key] == pytest.approx(rb[key], abs=1e-5), (ra["epoch"], key)
    wa, wb = load_file(str(killed / "weights.safetensors")), load_file(str(straight / "weights.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_a_gan_run_resumes_exactly_after_sigkill(tmp_path):
    """The GAN's critic and generator steps go through the one Trainer loop: a mid-epoch SIGKILL and --resume give
    the same per-epoch losses and the same final weights as an uninterrupted run."""
    raw = {
        "name": "gan-kill",
        "kind": "gan",
        "data": {"dataset": "mnist", "max_train": 256},
        "generator": {"name": "dcgan", "z_dim": 16, "width": 8, "embed_dim": 8},
        "critic": {"name": "dcgan", "width": 8, "feature_dim": 32},
        "trainer": {"epochs": 8, "steps_per_epoch": 8, "batch_size": 32, "n_critic": 2, "checkpoint_every": 3},
        "evaluation": {"grid_rows": 2, "grid_columns": 2, "classifier": None},
    }
    kill_resume_and_compare(raw, tmp_path, ("critic_loss", "wasserstein", "gp", "generator_loss", "train_loss"))


def test_a_federated_run_resumes_exactly_after_sigkill(manifest, tmp_path):
    """FedAvg rounds are epochs of the one Trainer loop, checkpointed at every round's end: a SIGKILL during
    training and --resume give every round's losses and the final test metrics of an uninterrupted run."""
    path = tmp_path / "fed.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(manifest, epochs=1)))
    args = ("federated", str(path), "--clients", "3", "--rounds", "8", "--alpha", "1.0")
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    kill_after_first_checkpoint(killed, *args)
    resume_and_run_straight(killed, straight, *args)
    assert [r["epoch"] for r in epochs_of(killed)] == list(range(1, 9))
    assert [r["clients"] for r in epochs_of(killed)] == [r["clients"] for r in epochs_of(straight)]
    assert_same_run(killed, straight)


def small() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 4)).sum().backward()
        opt.step()
    return model, opt


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_optimizer_state_round_trips_without_pickle(kind):
    model, _ = small()
    opt = (
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        if kind == "sgd"
        else torch.optim.AdamW(model.parameters(), lr=0.01)
    )
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    tensors, meta = optimizer_to_flat(opt)
    json.dumps(meta)  # the non-tensor part must be plain JSON
    fresh = type(opt)(model.parameters(), lr=1.0)
    optimizer_from_flat(fresh, tensors, json.loads(json.dumps(meta)))
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"][0]["lr"] == b["param_groups"][0]["lr"]
    for pid, st in a["state"].items():
        for k, v in st.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(b["state"][pid][k])), k


def test_checkpoints_keep_newest_and_point_latest_at_a_complete_folder(tmp_path):
    model, opt = small()
    for step in (10, 20, 30):
        save_checkpoint(tmp_path, step, model, opt, {"step": step}, keep=2)
    folders = sorted(p.name for p in tmp_path.glob("step-*"))
    assert folders == ["step-0000020", "step-0000030"]
    assert (tmp_path / "latest").read_text().strip() == "step-0000030"
    assert {p.name for p in (tmp_path / "step-0000030").iterdir()} == {
        "model.safetensors",
        "optim.safetensors",
        "state.json",
    }
    assert not list(tmp_path.glob(".tmp-*"))
    model2, opt2 = small()
    assert load_checkpoint(tmp_path, model2, opt2)["step"] == 30


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    model, opt = small()
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path, model, opt)
    with pytest.raises(CheckpointError, match="recipe.yaml"):
        api.train(None, tmp_path, resume=True)


def test_an_assistant_run_resumes_exactly_after_sigkill(tmp_path):
    """The assistant kind (encoders -> projector -> GPT, loss on answers only) trains through the same loop: a
    mid-run SIGKILL and --resume give the same per-epoch losses and final weights as an uninterrupted run."""
    from polymodal.kinds.base import kind_named

    raw = kind_named("assistant").example(tmp_path)
    raw["trainer"].update({"epochs": 8, "checkpoint_every": 3})
    kill_resume_and_compare(raw, tmp_path, ("train_loss", "val_loss"))
