"""data.store: examples streamed from memory-mapped .npy files train exactly as examples kept in memory; a damaged
store is rebuilt with a warning; and a table whose features exceed the memory limit trains (slow, cgroup)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_same_run, tiny_recipe
from PIL import Image

from polymodal import api
from polymodal.data.dataset import build_data
from polymodal.errors import ConfigError


def stored(manifest: Path, cache: Path, **trainer: object) -> dict:
    raw = tiny_recipe(manifest, **trainer)
    raw["data"].update(store=True, disk_cache_dir=str(cache))
    return raw


def test_a_stored_run_trains_as_one_kept_in_memory(manifest, tmp_path):
    api.train(stored(manifest, tmp_path / "cache", epochs=2), tmp_path / "stored")
    api.train(tiny_recipe(manifest, epochs=2), tmp_path / "memory")
    assert_same_run(tmp_path / "stored", tmp_path / "memory")
    folders = list((tmp_path / "cache" / "store").iterdir())
    assert len(folders) == 3 and all((f / "image.npy").is_file() and (f / "meta.json").is_file() for f in folders)


def test_a_damaged_store_is_rebuilt_with_a_warning_and_another_setting_gets_its_own(manifest, tmp_path, caplog):
    raw = stored(manifest, tmp_path / "cache")
    first = build_data(api.load_recipe(raw)).splits["train"]
    folder = first.store.folder
    before = [first.preprocess(i)["audio"].clone() for i in range(len(first))]
    data = (folder / "audio.npy").read_bytes()
    (folder / "audio.npy").write_bytes(data[: len(data) // 2])  # a copy cut short, a disk that filled up
    with caplog.at_level(logging.WARNING):
        again = build_data(api.load_recipe(raw)).splits["train"]
    assert "is unusable" in caplog.text and "building it again" in caplog.text
    assert all(torch.equal(x, again.preprocess(i)["audio"]) for i, x in enumerate(before))
    raw["inputs"][1]["preprocessing"]["n_mels"] = 8  # another preprocessing setting: another store, never this one
    other = build_data(api.load_recipe(raw)).splits["train"]
    assert other.store.folder != folder and other.preprocess(0)["audio"].shape[1] == 8


def test_a_store_needs_the_disk_cache(manifest):
    raw = tiny_recipe(manifest)
    raw["data"].update(store=True, disk_cache=False)
    with pytest.raises(ConfigError, match="data.store lives next to the feature cache"):
        build_data(api.load_recipe(raw))


def memory_cgroup(limit: int) -> Path | None:
    """A cgroup v1 memory group under this process's own, limited to ``limit`` bytes; None where there is none."""
    try:
        line = next(ln for ln in Path("/proc/self/cgroup").read_text().splitlines() if ":memory:" in ln)
        group = Path("/sys/fs/cgroup/memory") / line.split(":", 2)[2].lstrip("/") / f"polymodal-test-{uuid.uuid4().hex}"
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(limit))
        return group
    except (StopIteration, OSError):
        return None


TRAIN = """
import sys
from polymodal import api
raw = {"name": "big", "seed": 0,
       "data": {"table": sys.argv[1], "val_fraction": 0.1, "test_fraction": 0.1, "store": sys.argv[2] == "store",
                "disk_cache": sys.argv[2] == "store", "disk_cache_dir": sys.argv[3], "prepare_workers": 0},
       "inputs": [{"name": "image", "modality": "image", "preprocessing": {"size": 160, "channels": 3},
                   "encoder": {"name": "image_cnn", "width": 2, "depth": 1, "out_dim": 4}}],
       "trainer": {"epochs": 1, "batch_size": 64, "checkpoint_every": 0, "threads": 1}}
print(api.train(raw, sys.argv[4]).test["accuracy"])
"""


@pytest.mark.slow
def test_a_table_whose_features_exceed_the_memory_limit_trains_from_the_store(tmp_path):
    limit = 900 * 2**20
    group = memory_cgroup(limit)
    if group is None:
        pytest.skip("no writable cgroup v1 memory controller here (needs root)")
    try:
        rng = np.random.default_rng(0)
        for k in range(2):
            pixels = rng.integers(0, 60, (160, 160, 3)) + 150 * k  # a dark and a bright picture: one class each
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / f"{k}.png")
        rows = 3600  # 3 x 160 x 160 float32 = 300 KiB a row: 1.05 GiB of features against a 900 MiB limit
        (tmp_path / "t.csv").write_text("image,label\n" + "".join(f"{i % 2}.png,c{i % 2}\n" for i in range(rows)))

        def train(mode: str) -> subprocess.CompletedProcess:
            def enter() -> None:
                (group / "cgroup.procs").write_text(str(os.getpid()))

            args = [str(tmp_path / "t.csv"), mode, str(tmp_path / "cache"), str(tmp_path / mode)]
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
            return subprocess.run(
                [sys.executable, "-c", TRAIN, *args], preexec_fn=enter, env=env, capture_output=True, text=True
            )

        streamed = train("store")
        assert streamed.returncode == 0, streamed.stderr[-2000:]
        assert json.loads((tmp_path / "store" / "metrics.json").read_text())["epochs_run"] == 1
        features = sum(f.stat().st_size for f in (tmp_path / "cache" / "store").rglob("*.npy"))
        assert features > limit  # what trained is larger than the memory it was allowed
        # The same table with its examples kept in memory is killed by the kernel at the limit. (Without the disk
        # cache: its entries are read through mmap, and this table repeats two files, so cached entries would share
        # their pages and hide the size.)
        kept = train("memory")
        assert kept.returncode == -9, (kept.returncode, kept.stderr[-2000:])
    finally:
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                import time

                time.sleep(0.1)
