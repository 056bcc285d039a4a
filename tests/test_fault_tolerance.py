"""Crash safety without waiting for a real crash: a checkpoint or weights write interrupted at every step of
the way leaves a loadable checkpoint; damaged checkpoints fall back to the previous one; the data split
between processes covers every row."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from polymodal import storage
from polymodal.errors import CheckpointError
from polymodal.storage import save_weights
from polymodal.training import checkpoint
from polymodal.training.checkpoint import load_checkpoint, save_checkpoint
from polymodal.training.distributed import Dist, epoch_order


class Killed(BaseException):
    """Stands for the process dying: nothing after the injected point runs (no except/finally catches it)."""


def trained(seed: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    return model, opt


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def die_at(monkeypatch: pytest.MonkeyPatch, k: int) -> list[int]:
    """Make the k-th file-system call of a checkpoint write (file written, fsync, rename, delete) kill it."""
    calls = [0]

    def wrap(fn):
        def inner(*args, **kw):
            calls[0] += 1
            if calls[0] == k:
                raise Killed
            return fn(*args, **kw)

        return inner

    monkeypatch.setattr(checkpoint, "save_file", wrap(checkpoint.save_file))
    monkeypatch.setattr(checkpoint, "fsync_file", wrap(checkpoint.fsync_file))
    monkeypatch.setattr(checkpoint, "atomic_write_text", wrap(checkpoint.atomic_write_text))
    monkeypatch.setattr(checkpoint.os, "replace", wrap(checkpoint.os.replace))
    monkeypatch.setattr(checkpoint.shutil, "rmtree", wrap(checkpoint.shutil.rmtree))
    return calls


@pytest.mark.parametrize("rewrite", [False, True], ids=["new-step", "same-step-again"])
def test_a_checkpoint_write_killed_at_any_point_leaves_a_loadable_checkpoint(tmp_path, monkeypatch, rewrite):
    old, old_opt = trained(0)
    new, new_opt = trained(1)
    base = tmp_path / "base"
    save_checkpoint(base, 10, old, old_opt, {"step": 10})
    if rewrite:  # the step being written exists already (a rerun from an older checkpoint)
        save_checkpoint(base, 20, old, old_opt, {"step": 20})
    k, outcomes = 0, set()
    while True:
        k += 1
        root = tmp_path / f"kill-{k}"
        shutil.copytree(base, root)
        with monkeypatch.context() as m:
            calls = die_at(m, k)
            try:
                save_checkpoint(root, 20, new, new_opt, {"step": 20})
                finished = True
            except Killed:
                finished = False
        model, opt = trained(2)
        step = load_checkpoint(root, model, opt)["step"]
        assert step in (10, 20), f"killed at call {k}"
        if step == 20 and same_weights(model, new):
            outcomes.add("new")
        else:
            assert same_weights(model, old), f"killed at call {k}: loaded weights are neither checkpoint's"
            outcomes.add("old")
        if finished:
            assert calls[0] < k and step == 20 and same_weights(model, new)
            break
    assert k > 5 and outcomes == {"old", "new"}


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    old, opt = trained(0)
    new, _ = trained(1)
    save_checkpoint(tmp_path, 10, old, opt, {"step": 10})
    save_checkpoint(tmp_path, 20, new, opt, {"step": 20})
    data = (tmp_path / "step-0000020" / "model.safetensors").read_bytes()
    (tmp_path / "step-0000020" / "model.safetensors").write_bytes(data[: len(data) // 2])  # a torn file
    model, opt2 = trained(2)
    with caplog.at_level(logging.WARNING):
        assert load_checkpoint(tmp_path, model, opt2)["step"] == 10
    assert same_weights(model, old) and "step-0000010" in caplog.text

    shutil.rmtree(tmp_path / "step-0000020")  # `latest` names a folder that is gone
    assert load_checkpoint(tmp_path, model, opt2)["step"] == 10
    (tmp_path / "step-0000010" / "state.json").write_text("{")
    with pytest.raises(CheckpointError, match="step-0000020 is unreadable.*delete it and resume again"):
        load_checkpoint(tmp_path, model, opt2)


def test_save_weights_killed_midway_keeps_the_previous_weights(tmp_path, monkeypatch):
    old, _ = trained(0)
    new, _ = trained(1)
    path = tmp_path / "weights.safetensors"
    save_weights(old, path)

    def torn_write(tensors: dict, filename: str) -> None:
        Path(filename).write_bytes(b"\0" * 100)  # half a file, then the process dies
        raise Killed

    monkeypatch.setattr(storage, "save_file", torn_write)
    with pytest.raises(Killed):
        save_weights(new, path)
    kept = load_file(str(path))
    assert all(torch.equal(kept[k], v) for k, v in old.state_dict().items())


def test_rank_rng_states_are_saved_and_each_rank_gets_its_own_back(tmp_path):
    model, opt = trained(0)
    states = [torch.manual_seed(s).get_state() for s in (7, 8)]
    save_checkpoint(tmp_path, 5, model, opt, {"step": 5}, rng=states)
    for rank, expected in enumerate(states):
        load_checkpoint(tmp_path, model, opt, rank=rank)
        assert torch.equal(torch.get_rng_state(), expected)


@pytest.mark.parametrize("n", [2400, 101, 3])
def test_training_shards_are_disjoint_equal_and_cover_every_row(n):
    shards = [Dist(rank=r, world_size=2).train_batches(n, 64, seed=0, epoch=3) for r in range(2)]
    rows = [[i for b in s for i in b] for s in shards]
    assert len(shards[0]) == len(shards[1]) and [len(b) for b in shards[0]] == [len(b) for b in shards[1]]
    assert set(rows[0]) | set(rows[1]) == set(range(n))
    # disjoint up to the one row DistributedSampler repeats to even out an odd count
    assert len(set(rows[0]) & set(rows[1])) == n % 2
    assert max(len(b) for b in shards[0]) == min(32, (n + 1) // 2)  # batch_size / 2: a step still sees 64
    again = Dist(rank=0, world_size=2).train_batches(n, 64, seed=0, epoch=4)
    assert again != shards[0] or n < 4  # a new order every epoch (set_epoch)


def test_one_process_trains_in_the_same_order_as_before():
    batches = Dist().train_batches(130, 64, seed=5, epoch=2)
    order = epoch_order(130, 5, 2)
    assert batches == [order[0:64], order[64:128], order[128:130]]


def test_evaluation_rows_are_split_without_repeats():
    rows = [Dist(rank=r, world_size=2).eval_rows(7) for r in range(2)]
    assert sorted(rows[0] + rows[1]) == list(range(7))
    assert Dist(rank=1, world_size=2).eval_rows(1) == [0]  # fewer rows than processes: everyone scores all
