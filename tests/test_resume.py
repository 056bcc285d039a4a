"""Checkpoints and resume: a SIGKILLed run continues to exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from conftest import assert_same_run, epochs_of, tiny_recipe
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
