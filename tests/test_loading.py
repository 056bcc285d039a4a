"""Loading workers: ``num_workers: auto`` starts them only where loading computes something; a worker that dies or
hangs, in the batch loader or in the first pass's process pool, stops the run with one line, quickly."""

from __future__ import annotations

import os
import time

import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from polymodal.data.cache import FeatureCache
from polymodal.data.loading import EpochBatches, Loading, auto_workers, guarded, worker_error
from polymodal.data.modalities.image import ImageTransform
from polymodal.data.prepare import prefill
from polymodal.errors import DataError
from polymodal.registry import MODALITIES
from polymodal.training.steps import loader


class Rows(Dataset):
    """Row i is the tensor [i]; a worker process asked for row ``die`` exits at once (a decoder's crash), and
    one asked for row ``hang`` sleeps."""

    def __init__(self, n: int, die: int = -1, hang: int = -1) -> None:
        self.n, self.die, self.hang, self.main = n, die, hang, os.getpid()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if os.getpid() != self.main and i == self.die:
            os._exit(3)
        if os.getpid() != self.main and i == self.hang:
            time.sleep(3)  # past the 1 s timeout; short, so the shutdown that follows need not kill it
        return {"x": torch.tensor([float(i)])}, {"x": True}, torch.tensor(i)


def test_auto_starts_workers_only_where_loading_computes_something():
    audio = MODALITIES.get("audio")
    plain = {"audio": MODALITIES.build("audio", audio.config())}
    augmented = {"audio": MODALITIES.build("audio", audio.config(speed=0.1))}
    assert auto_workers(plain, cached=True, cores=8) == 0  # examples in memory: the training process is fastest
    assert auto_workers(augmented, cached=True, cores=8) == 4  # STFT again every epoch: one per core, at most 4
    assert auto_workers(plain, cached=False, cores=2) == 2  # every epoch decodes the files
    assert auto_workers(augmented, cached=True, cores=1) == 0  # one core: a worker would only take turns


def test_persistent_workers_serve_every_epoch_the_batches_set_for_it():
    batches = EpochBatches()
    loading = Loading(workers=2, persistent=True)
    data = loader(Rows(12), batches, loading=loading)
    for epoch in range(3):
        batches.set([[i, (i + epoch) % 12] for i in range(0, 12, 3)])
        got = [b[2].tolist() for b in guarded(data, loading)]
        assert got == [[i, (i + epoch) % 12] for i in range(0, 12, 3)]


def test_a_worker_that_dies_is_one_line_not_a_hang():
    batches = EpochBatches()
    batches.set([[i, i + 1] for i in range(0, 40, 2)])
    loading = Loading(workers=2, persistent=False)
    t = time.perf_counter()
    try:
        list(guarded(loader(Rows(40, die=17), batches, loading=loading), loading))
        raise AssertionError("the dead worker went unnoticed")
    except DataError as exc:
        error = exc
    except RuntimeError as exc:  # torch's SIGCHLD handler raised outside the loader: the Trainer translates it so
        error = worker_error(exc, loading)
    assert time.perf_counter() - t < 15
    assert "data-loading worker process died" in str(error) and "data.num_workers: 0" in str(error)
    assert "\n" not in str(error)


def test_a_worker_stuck_past_the_timeout_is_one_line():
    batches = EpochBatches()
    batches.set([[i] for i in range(8)])
    loading = Loading(workers=1, persistent=False, timeout=1.0)
    with pytest.raises(DataError, match=r"took over 1 s for one batch \(data.worker_timeout\)"):
        list(guarded(loader(Rows(8, hang=2), batches, loading=loading), loading))


class CrashingImage(ImageTransform):
    """An image decoder that takes the whole process down on one file (as a native decoder's segfault does)."""

    def __call__(self, value):
        if str(value).endswith("/13.png"):
            os._exit(3)
        return super().__call__(value)


def test_a_pool_process_that_dies_is_one_line_naming_where_it_was(tmp_path):
    for i in range(40):
        Image.new("L", (8, 8), color=i).save(tmp_path / f"{i}.png")
    cells = [str(tmp_path / f"{i}.png") for i in range(40)]
    with pytest.raises(DataError) as e:
        prefill({"image": cells}, {"image": CrashingImage(8, 1, 0.5, 0.5, 1_000_000)}, FeatureCache(tmp_path / "c"), 2)
    assert "a process of the first pass died while decoding input 'image'" in str(e.value)
    assert "data.prepare_workers: 0" in str(e.value) and "\n" not in str(e.value)
