"""The first pass under torchrun: two gloo processes split a table's files between them through the feature cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.multiprocessing as mp
from conftest import CLASSES, PER_CLASS, tiny_recipe
from test_distributed import free_port

from polymodal.api import load_recipe
from polymodal.data.dataset import build_data
from polymodal.training import distributed

WORLD = 2


def recipe_with_cache(manifest: Path, cache: Path):
    raw = tiny_recipe(manifest)
    raw["data"] |= {"disk_cache_dir": str(cache), "prepare_workers": WORLD}  # one per process: decoded in-process
    return load_recipe(raw)


def worker(rank: int, port: int, manifest: Path, setups: dict[str, list[Path]], out: Path) -> None:
    """Builds the data once per setup (``{name: cache folder of each rank}``) in one process group."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        LOCAL_WORLD_SIZE=str(WORLD),
    )
    dist = distributed.from_env("cpu")
    report = {}
    for name, caches in setups.items():
        data = build_data(recipe_with_cache(manifest, caches[rank]))
        cache = data.splits["train"].disk_cache
        report[name] = {"misses": cache.misses, "hits": cache.hits}
        torch.save(features(data), out / f"{name}-{rank}.pt")
    (out / f"rank-{rank}.json").write_text(json.dumps(report))
    dist.barrier()
    distributed.shutdown()


def features(data) -> dict[str, torch.Tensor]:
    """Every preprocessed cell of every split, keyed ``split/row/input``."""
    return {
        f"{split}/{i}/{k}": x
        for split, ds in data.splits.items()
        for i in range(len(ds))
        for k, x in ds.preprocess(i).items()
    }


def two_ranks(manifest: Path, setups: dict[str, list[Path]], out: Path) -> list[dict]:
    out.mkdir()
    mp.spawn(worker, args=(free_port(), manifest, setups, out), nprocs=WORLD, join=True)
    return [json.loads((out / f"rank-{r}.json").read_text()) for r in range(WORLD)]


def test_each_rank_decodes_half_of_the_files_and_reads_the_rest_from_the_shared_cache(manifest, tmp_path):
    shared, out = tmp_path / "cache", tmp_path / "out"
    setups = {"shared": [shared, shared], "separate": [tmp_path / "cache-0", tmp_path / "cache-1"]}
    r0, r1 = two_ranks(manifest, setups, out)
    n_files = 2 * CLASSES * PER_CLASS  # a PNG and a WAV per row
    # each decoded its half; every other file of the table came from the cache the other one wrote
    assert r0["shared"]["misses"] == r1["shared"]["misses"] == n_files // 2
    assert r0["shared"]["hits"] == r1["shared"]["hits"] == n_files
    assert len(list(shared.glob("*/*.safetensors"))) == n_files
    assert not list((shared / ".ranks").iterdir())  # the markers that found the sharing ranks are gone
    # caches the ranks do not share (machines without a shared file system): no split, every file still prepared
    assert r0["separate"]["misses"] == r1["separate"]["misses"] == n_files

    # bit for bit the features a single process computes from scratch
    alone = features(build_data(recipe_with_cache(manifest, tmp_path / "alone")))
    for name in setups:
        for rank in range(WORLD):
            rows = torch.load(out / f"{name}-{rank}.pt", weights_only=True)
            assert rows.keys() == alone.keys()
            assert all(torch.equal(rows[k], alone[k]) for k in alone), (name, rank)
