"""The first pass over a table's files, in parallel: every file cell's decoding and features computed by a pool of
processes into the on-disk feature cache, so the screening pass that follows (``data.on_error``) reads them back.

Decoding (PNG, WAV, MP4) and features (resampling, STFT, a pretrained front end) are CPU-bound Python/numpy work
that one process does one file at a time; ``data.prepare_workers`` processes do as many at once. The workers are
forked after the transforms are fitted, so they hold the same transforms, and write content-addressed,
atomically renamed cache entries (two workers writing one entry both write the same bytes). A cell a worker cannot
read is left to the main process, whose screening pass then raises or skips it with the row's number as usual —
the pool only warms the cache and never decides what a bad row becomes.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import torch

from polymodal.data.cache import FeatureCache
from polymodal.errors import DataError, PolymodalError

log = logging.getLogger(__name__)
MIN_FILES_PER_WORKER = 8  # below this, starting processes costs more than it saves

_state: dict[str, Any] = {}  # in a worker: the forked transforms and cache


def default_workers() -> int:
    """Processes for the first pass when ``data.prepare_workers`` is unset: the cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def file_cells(columns: dict[str, list[Any]], transforms: dict[str, Any]) -> list[tuple[str, str]]:
    """Distinct (input, path) pairs of inputs that read files."""
    seen: dict[tuple[str, str], None] = {}
    for name, cells in columns.items():
        if getattr(transforms[name], "files", False):
            for cell in cells:
                if isinstance(cell, str) and cell.strip():
                    seen.setdefault((name, cell), None)
    return list(seen)


def _start(transforms: dict[str, Any], cache: FeatureCache) -> None:
    torch.set_num_threads(1)  # one process per core; each its own single-threaded STFT
    _state.update(transforms=transforms, cache=cache)


def _compute(item: tuple[str, str]) -> bool:
    name, cell = item
    try:
        _state["cache"].get_or_compute(cell, _state["transforms"][name])
        return True
    except PolymodalError:
        return False  # the main process meets it again and reports it with its row


def prefill(
    columns: dict[str, list[Any]],
    transforms: dict[str, Any],
    cache: FeatureCache | None,
    workers: int,
    progress: Callable[[int, int, float], None] | None = None,
) -> int:
    """Compute the features of every file cell of ``columns`` into ``cache`` with ``workers`` processes.

    Returns the number of cells the pool computed or found (0 when it did not run: no cache, one worker, or
    too few files to be worth the processes). ``progress(done, total, seconds)`` is called as files finish.
    """
    items = file_cells(columns, transforms)
    if cache is None or workers <= 1 or len(items) < MIN_FILES_PER_WORKER * 2:
        return 0
    workers = min(workers, len(items) // MIN_FILES_PER_WORKER)
    start, done, ok = time.perf_counter(), 0, 0
    # fork: the fitted transforms are inherited, not pickled (a pretrained front end's sessions are per process).
    context = multiprocessing.get_context("fork")
    chunk = max(1, min(64, len(items) // (workers * 8)))
    every = max(1, min(256, len(items) // 100))  # about a hundred progress calls, whatever the size
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start, initargs=(transforms, cache)) as pool:
            for good in pool.map(_compute, items, chunksize=chunk):
                done += 1
                ok += good
                if progress is not None and (done % every == 0 or done == len(items)):
                    progress(done, len(items), time.perf_counter() - start)
    except BrokenProcessPool:
        # map() yields in order: the files up to `done` finished, and the crash was in one of the next chunks.
        name, first = items[done]
        raise DataError(
            f"a process of the first pass died while decoding input '{name}' (after {done} of {len(items)} files; "
            f"among the next {chunk * workers}, starting at {first}): a file that crashes its decoder, or memory ran "
            "out; set data.prepare_workers: 0 and data.num_workers: 0 to find the row, and remove or re-encode it"
        ) from None
    seconds = time.perf_counter() - start
    log.info(
        "prepared %d files in %.1f s (%.0f files/s, %d processes)", len(items), seconds, len(items) / seconds, workers
    )
    return ok
