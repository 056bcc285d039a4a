"""How training batches are loaded: in the training process, or by a pool of forked worker processes.

``data.num_workers: auto`` (the default) starts workers only where they have work to do: when an input recomputes
its features every epoch (audio's waveform augmentation: speed, gain, noise at an SNR) or examples are not kept in
memory (``data.cache: false``, every epoch decodes the files again). A table whose preprocessed examples sit in
memory is served faster by the training process itself than by workers that pickle each batch back through a
pipe, and a test suite that trains hundreds of tiny runs forks nothing. Results do not depend on the number:
each row's augmentation is drawn from its own ``(seed, epoch, row)`` seed (:func:`example_seed`), whichever
process loads it, on any rank (a row index is global, so no two ranks share a seed either).

A worker that dies (a file that crashes its decoder, the kernel killing it for memory) or takes longer than
``data.worker_timeout`` for one batch stops the run with one :class:`~polymodal.errors.DataError` line
(:func:`guarded`) instead of a traceback from inside torch or a hang.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from polymodal.config import DataConfig
from polymodal.errors import DataError

MAX_AUTO_WORKERS = 4  # more than this rarely helps one training process and each holds a copy-on-write heap


@dataclass(frozen=True)
class Loading:
    """The DataLoader settings of a training split (``data.num_workers`` resolved to a number).

    Args:
        workers: Processes that load batches (0: the training process itself).
        persistent: Keep the workers between epochs (no fork per epoch).
        prefetch: Batches each worker loads ahead (None: torch's default, 2).
        timeout: Seconds a worker may take for one batch before the run stops (0: no limit).
    """

    workers: int = 0
    persistent: bool = True
    prefetch: int | None = None
    timeout: float = 0.0


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def auto_workers(transforms: dict[str, Any], cached: bool, cores: int | None = None) -> int:
    """``data.num_workers: auto``: one worker per core, up to :data:`MAX_AUTO_WORKERS`, when loading a batch
    computes something (an input that augments from the waveform, or no in-memory cache); 0 otherwise and on a
    single core (a worker would only take turns with the training process). Under torchrun each process counts
    its share of the machine's cores."""
    if cores is None:  # under torchrun the processes on this machine share its cores
        cores = usable_cores() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    busy = not cached or any(getattr(t, "recomputes", False) for t in transforms.values())
    return min(cores, MAX_AUTO_WORKERS) if busy and cores > 1 else 0


def loading_of(data: DataConfig, transforms: dict[str, Any]) -> Loading:
    """The training split's loader settings from the recipe's data section (``num_workers: auto`` resolved; a
    feature store reads from disk every epoch, as ``data.cache: false`` does)."""
    workers = data.num_workers
    if workers == "auto":
        workers = auto_workers(transforms, cached=data.cache and not data.store)
    return Loading(int(workers), data.persistent_workers, data.prefetch_factor, data.worker_timeout)


def example_seed(seed: int, epoch: int, row: int) -> int:
    """The seed of one row's augmentation in one epoch (the same whichever process loads it, and on resume)."""
    return (seed * 1_000_003 + epoch) * 10_000_019 + row & 0x7FFF_FFFF_FFFF_FFFF


def worker_start(_: int) -> None:
    """A loading worker: one thread (a worker per core), and numpy's and Python's global RNGs seeded from the
    worker's torch seed, which torch draws per worker from the loader's own generator (rows draw their
    augmentation from their own seeds; this only keeps stray global draws from repeating across workers)."""
    torch.set_num_threads(1)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


class EpochBatches:
    """A batch sampler whose batches change each epoch, so one DataLoader (and its persistent workers) serves
    every epoch: the sampler is iterated in the training process, each epoch after :meth:`set`."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []

    def set(self, batches: Sequence[list[Any]]) -> None:
        self.batches = list(batches)

    def __iter__(self) -> Iterator[list[Any]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def guarded(batches: Iterable[Any], loading: Loading) -> Iterator[Any]:
    """The batches of a DataLoader, with a dead or stuck worker turned into one DataError line (the workers
    that are left are shut down first, so none of them signals the training process afterwards).

    torch reports a dead worker as a RuntimeError, from ``next`` or from its SIGCHLD handler wherever the
    training process happens to be (the Trainer translates that one with :func:`worker_error`), or, when the
    batch was being received as the worker died, as the broken pipe's ConnectionResetError or EOFError."""
    it = iter(batches)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except (ConnectionError, EOFError, RuntimeError) as exc:
            error = worker_error(exc, loading)
            if error is None:
                raise
            stop(it)
            raise error from None
        yield batch


def stop(it: Any) -> None:
    """Shut a DataLoader iterator's workers down (which also unregisters them from torch's SIGCHLD handler). The
    dead worker's signal may interrupt the shutdown with its RuntimeError; the shutdown has then unregistered
    the workers on its way out (its ``finally``), and calling it again finishes the rest."""
    shutdown = getattr(it, "_shutdown_workers", None)
    for _ in range(3):
        try:
            if shutdown is not None:
                shutdown()
            return
        except RuntimeError:
            continue


def worker_error(exc: BaseException, loading: Loading) -> DataError | None:
    """The one line for an exception that says a loading worker died or timed out; None for any other."""
    text = str(exc)
    if isinstance(exc, (ConnectionError, EOFError)) and loading.workers:
        detail = text or type(exc).__name__
    elif isinstance(exc, RuntimeError) and "DataLoader worker" in text and "exited unexpectedly" in text:
        detail = text.split("(", 1)[-1].split(")")[0] + ", " + text.split(") ", 1)[-1].split(".")[0]
    elif isinstance(exc, RuntimeError) and "DataLoader timed out" in text:
        return DataError(
            f"a data-loading worker took over {loading.timeout:g} s for one batch (data.worker_timeout): a decoder "
            "may hang on a file; set data.num_workers: 0 to find the row, or raise data.worker_timeout for very "
            "slow storage"
        )
    else:
        return None
    return DataError(
        f"a data-loading worker process died ({detail}) while loading a training batch: a file that crashes its "
        "decoder, or memory ran out; set data.num_workers: 0 to see the row it stops at, and remove or re-encode "
        "that file"
    )
