"""The first pass over a table's files, in parallel: every file cell's decoding and features computed by a pool of
processes into the on-disk feature cache, so the screening pass that follows (``data.on_error``) reads them back.

Decoding (PNG, WAV, MP4) and features (resampling, STFT, a pretrained front end) are CPU-bound Python/numpy work
that one process does one file at a time; ``data.prepare_workers`` processes do as many at once, each taking
chunks of cells that a modality may compute together (``Transform.many``: audio's STFTs in one batch). The
workers are forked after the transforms are fitted, so they hold the same transforms, and write content-addressed,
atomically renamed cache entries (two workers writing one entry both write the same bytes). A cell a worker cannot
read is left to the main process, whose screening pass then raises or skips it with the row's number as usual —
the pool only warms the cache and never decides what a bad row becomes.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import torch

from polymodal.data.cache import FeatureCache, cacheable, numeric_array
from polymodal.errors import DataError, PolymodalError

log = logging.getLogger(__name__)
MIN_FILES_PER_WORKER = 8  # below this, starting processes costs more than it saves
CHUNK = 64  # cells a process computes together (Transform.many)

_state: dict[str, Any] = {}  # in a worker: what the pool's function needs, inherited through fork


def default_workers() -> int:
    """Processes for the first pass when ``data.prepare_workers`` is unset: the cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def one_thread() -> Iterator[None]:
    """torch's intra-op threads set to one for the block, then restored: the first pass's per-example work (an STFT
    of a second of audio, a 28x28 image) is too small to gain from threads, and while other processes hold the
    cores, threads waiting for each other made the main process's screening pass 10-20x slower on a loaded 2-core
    machine (the pool's processes already run one thread each)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def file_cells(
    columns: dict[str, list[Any]], transforms: dict[str, Any], every_array: bool = False
) -> list[tuple[str, str | int]]:
    """What the pool computes: distinct (input, path) pairs of inputs that read files, and (input, row) for an
    array cell the feature cache keeps (a waveform a dataset built in memory; see :meth:`FeatureCache.key`), or
    with ``every_array`` for every numeric array cell (whose features the pool sends back, see :func:`prefill`)."""
    seen: dict[tuple[str, str | int], None] = {}
    for name, cells in columns.items():
        if getattr(transforms[name], "files", False):
            for i, cell in enumerate(cells):
                if isinstance(cell, str) and cell.strip():
                    seen.setdefault((name, cell), None)
                elif cacheable(cell, transforms[name]) or (every_array and numeric_array(cell)):
                    seen.setdefault((name, i), None)
    return list(seen)


def state() -> dict[str, Any]:
    """In a :func:`pool_map` function: the ``state`` it was given (inherited through fork)."""
    return _state


def _start(fn: Callable[[Any], Any], state: dict[str, Any]) -> None:
    torch.set_num_threads(1)  # one process per core; each its own single-threaded STFT
    _state.update(state, fn=fn)


def _call(item: Any) -> Any:
    return _state["fn"](item)


def pool_map(
    fn: Callable[[Any], Any],
    items: list[Any],
    workers: int,
    what: Callable[[Any], str],
    progress: Callable[[int, int, float], None] | None = None,
    state: dict[str, Any] | None = None,
) -> list[Any]:
    """``[fn(item) for item in items]`` by ``workers`` forked processes, in order (one process: in this one).

    ``fn`` and ``state`` (read in the workers from this module's ``_state``) are inherited through fork, never
    pickled; only the items and results travel. A process that dies (a decoder's crash, the kernel killing it
    for memory) is one DataError line naming what it was doing, ``what(item)``, near the item it died on.
    ``progress(done, total, seconds)`` is called about a hundred times.
    """
    start, out = time.perf_counter(), []
    every = max(1, min(256, len(items) // 100))
    if workers <= 1:
        _state.update(state or {}, fn=fn)
        try:
            for i, item in enumerate(items, 1):
                out.append(fn(item))
                if progress is not None and (i % every == 0 or i == len(items)):
                    progress(i, len(items), time.perf_counter() - start)
        finally:
            _state.clear()  # what the items needed (a table's columns) is not kept alive here
        return out
    chunk = max(1, min(64, len(items) // (workers * 8)))
    context = multiprocessing.get_context("fork")  # the fitted transforms are inherited, not pickled
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start, initargs=(fn, state or {})) as pool:
            for result in pool.map(_call, items, chunksize=chunk):
                out.append(result)
                if progress is not None and (len(out) % every == 0 or len(out) == len(items)):
                    progress(len(out), len(items), time.perf_counter() - start)
    except BrokenProcessPool:
        # map() yields in order: the items up to len(out) finished, and the crash was in one of the next chunks.
        done = len(out)
        raise DataError(
            f"a process of the first pass died while {what(items[done])} (after {done} of {len(items)} tasks; among "
            f"the next {chunk * workers}): a file that crashes its decoder, or memory ran out; set "
            "data.prepare_workers: 0 and data.num_workers: 0 to find the row, and remove or re-encode it"
        ) from None
    return out


def _compute(chunk: list[tuple[str, str | int]]) -> list[Any]:
    """A chunk of cells' features, computed together per input (:meth:`FeatureCache.get_or_compute_many`): a file
    cell's into the cache, and sent back (with ``send_files``) or True; an array cell's sent back; None when
    unreadable."""
    out: list[Any] = [None] * len(chunk)
    for name in dict.fromkeys(name for name, _ in chunk):
        at = [i for i, (n, _) in enumerate(chunk) if n == name]
        refs = [chunk[i][1] for i in at]
        cells = [ref if isinstance(ref, str) else _state["columns"][name][ref] for ref in refs]
        computed = _state["cache"].get_or_compute_many(cells, _state["transforms"][name])
        for i, ref, x in zip(at, refs, computed, strict=True):
            out[i] = None if isinstance(x, PolymodalError) else _sendable(x, ref)
    return out


def _sendable(x: torch.Tensor, ref: str | int) -> Any:
    """What goes back to the main process for a cell's features: True for a file cell unless ``send_files``."""
    if not _state["send_arrays"] or (isinstance(ref, str) and not _state["send_files"]):
        return True
    try:
        return x.numpy()  # a numpy array pickles ~15x faster than a tensor; torch.from_numpy restores it as it was
    except (TypeError, RuntimeError):  # a dtype numpy lacks (bfloat16), or a tensor needing grad
        return x


def _tensor(x: Any) -> torch.Tensor | None:
    """What :func:`_compute` sent back for an array cell as a tensor (None for a file cell or a failure)."""
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    return x if isinstance(x, torch.Tensor) else None


def prefill(
    columns: dict[str, list[Any]],
    transforms: dict[str, Any],
    cache: FeatureCache | None,
    workers: int,
    progress: Callable[[int, int, float], None] | None = None,
    shard: tuple[int, int] = (0, 1),
    send_files: bool = False,
) -> int:
    """Compute the features of every file cell and array cell of ``columns`` in chunks, with ``workers`` processes
    (or in this one, with one worker or too few cells to be worth starting processes): a file cell's into
    ``cache`` on disk, an array cell's (a waveform or image a dataset built in memory) sent back and held by
    ``cache`` in this process (:meth:`FeatureCache.hold`) until the screening pass has taken it; an array of at
    least ``MIN_ARRAY`` elements whose transform asks for it (``cache_arrays``) is also written to disk. A process
    of a group (``shard``) shares through the disk only, so it computes file cells and those arrays alone.
    With ``send_files`` (the datasets will keep every row in memory anyway) a file cell's features are sent back
    and held too: the screening pass then neither hashes the file nor reads its entry back.

    Returns the number of cells computed or found (0 without a cache: nothing to warm).
    ``progress(done, total, seconds)`` is called as chunks finish.
    ``shard=(i, n)``: only every n-th file cell from the i-th (one process's share under torchrun).
    """
    items = file_cells(columns, transforms, every_array=shard[1] == 1)[shard[0] :: shard[1]]
    if cache is None or not items:
        return 0
    # Too few cells to be worth starting processes (fewer than 2 x MIN_FILES_PER_WORKER): computed in this one.
    workers = max(1, min(workers, len(items) // MIN_FILES_PER_WORKER))
    start = time.perf_counter()
    # Chunks of cells computed together (Transform.many), a few per process so that none waits long for the last.
    size = max(1, min(CHUNK, -(-len(items) // (workers * 4))))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]

    def what(chunk: list[tuple[str, str | int]]) -> str:
        name, ref = chunk[0]
        where = ref if isinstance(ref, str) else f"row {ref} of the built table"
        return f"decoding input '{name}' (a task of {len(chunk)} cells from {where})"

    def report(done: int, total: int, seconds: float) -> None:
        if progress is not None:
            progress(min(done * size, len(items)), len(items), seconds)

    send = shard[1] == 1  # a process of a group shares through the disk only
    state = {
        "transforms": transforms,
        "cache": cache,
        "columns": columns,
        "send_arrays": send,
        "send_files": send and send_files,
    }
    with one_thread() if workers == 1 else nullcontext():  # the pool's processes set theirs (_start)
        results = [x for chunk in pool_map(_compute, chunks, workers, what, report, state) for x in chunk]
    for (name, ref), x in zip(items, map(_tensor, results), strict=True):
        if x is not None:
            cache.hold(ref if isinstance(ref, str) else columns[name][ref], transforms[name], x)
    ok = sum(x is not None for x in results)
    seconds = time.perf_counter() - start
    log.info(
        "prepared %d cells in %.1f s (%.0f cells/s, %d processes)", len(items), seconds, len(items) / seconds, workers
    )
    return ok
