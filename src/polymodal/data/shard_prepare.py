"""The first pass under ``torchrun``: every process decodes only its share of the files into the shared feature cache.

Without this, each of N processes would decode every file of the table (N times the work of one process, on the
same cores). Instead the processes that see the same cache folder split the table's file cells between them
(process at position p of k takes cells p, p + k, ...), each writes its cells' features into the cache, all wait
at a barrier, and then every process reads the whole table from the cache in the screening pass as one process
would. The features are the same bytes whoever computed them (content-addressed entries of a deterministic
transform), so the run is identical to a single-process one, and resume is unchanged.

Which processes share the cache is found out, not assumed: each writes a marker file named after a token agreed
by all, and after a barrier counts the markers it can see. On one machine, or on several with the cache on a
shared file system, all processes share it; on machines with local caches, the processes of each machine split
that machine's work. Correctness never depends on it: a cell whose entry a process cannot find is decoded by that
process in the screening pass, as without sharding.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch.distributed as dist

from polymodal.data.cache import FeatureCache
from polymodal.data.prepare import file_cells, prefill

log = logging.getLogger(__name__)


def in_group() -> bool:
    """True inside a process group of more than one process (``torchrun`` with several processes)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def sharing_ranks(root: Path) -> list[int]:
    """The ranks (this one included) that see the same folder ``root``; collective: every rank must call it."""
    box = [uuid.uuid4().hex if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    marks, rank = root / ".ranks", dist.get_rank()
    mine = marks / f"{box[0]}-{rank}"
    try:
        marks.mkdir(parents=True, exist_ok=True)
        mine.touch()
    except OSError as exc:  # a read-only cache folder: this rank shares with nobody
        log.warning("feature cache %s is not writable (%s); each process prepares every file", root, exc)
        mine = None
    dist.barrier()
    seen = sorted(int(p.name.rsplit("-", 1)[1]) for p in marks.glob(f"{box[0]}-*")) if mine is not None else []
    dist.barrier()  # everyone has looked before anyone removes its marker
    if mine is not None:
        mine.unlink(missing_ok=True)
    return seen if rank in seen else [rank]


def prefill_sharded(
    columns: dict[str, list[Any]],
    transforms: dict[str, Any],
    cache: FeatureCache | None,
    workers: int,
    progress: Callable[[int, int, float], None] | None = None,
    send_files: bool = False,
) -> int:
    """:func:`polymodal.data.prepare.prefill` for one process of a group: this rank's share of the file cells,
    with ``workers`` split between the processes of this machine (``LOCAL_WORLD_SIZE``), then a barrier.

    Outside a process group, or without a cache to share through, it is ``prefill`` itself (``send_files``: see
    there; a group shares through the disk only). Returns the number of cells this process computed or found.
    """
    if cache is None or not in_group():
        return prefill(columns, transforms, cache, workers, progress, send_files=send_files)
    start = time.perf_counter()
    ranks = sharing_ranks(cache.root)
    index, count = ranks.index(dist.get_rank()), len(ranks)
    local = max(1, workers // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    cells = file_cells(columns, transforms)
    share = cells[index::count]
    report = progress if dist.get_rank() == 0 else None
    # One core per process (or too few files for a pool): prefill decodes its share in this process.
    done = prefill(columns, transforms, cache, local, report, shard=(index, count))
    log.info(
        "rank %d prepared %d of %d files (share %d of %d, %d process(es)) in %.1f s",
        dist.get_rank(),
        len(share),
        len(cells),
        index + 1,
        count,
        local,
        time.perf_counter() - start,
    )
    dist.barrier()  # every share is in the cache before anyone reads it
    return done
