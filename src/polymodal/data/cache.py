"""On-disk feature cache: preprocessed example tensors keyed by file content + preprocessing settings.

Decoding and feature extraction (PNG/WAV/MP4 decode, STFT) dominate the first epoch; with this cache a
second run over the same files skips them. The key is the sha256 of the file's bytes and of the
transform's ``settings()`` (class, every preprocessing key and fitted state), so editing a file or a
preprocessing key can never return a stale tensor. Entries are safetensors files written atomically.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import save as save_numpy
from safetensors.torch import load_file, save

from polymodal.data.modalities.base import Transform
from polymodal.errors import PolymodalError

log = logging.getLogger(__name__)
ENV_VAR = "POLYMODAL_CACHE"
# An array cell (a waveform or image a dataset built in memory) is cached from this many elements: a recording's
# STFT costs far more than hashing its samples and reading the entry back; a 28x28 digit's transform costs less.
MIN_ARRAY = 4096


def numeric_array(cell: Any) -> bool:
    """A cell that is a numeric array (a waveform or image a dataset built in memory)."""
    return isinstance(cell, np.ndarray) and cell.dtype.kind in "fiub"


def cacheable(cell: Any, transform: Transform | None = None) -> bool:
    """A cell the cache keeps: a file path, or a numeric array of at least :data:`MIN_ARRAY` elements whose
    ``transform`` says its features deserve a disk entry (:attr:`Transform.cache_arrays`)."""
    if isinstance(cell, str):
        return True
    return numeric_array(cell) and cell.size >= MIN_ARRAY and (transform is None or transform.cache_arrays)


def held_key(cell: Any) -> int | str:
    """How :meth:`FeatureCache.hold` knows a cell: a path by its text, anything else by its identity."""
    return cell if isinstance(cell, str) else id(cell)


def default_cache_dir() -> Path:
    return Path(os.environ.get(ENV_VAR) or Path.home() / ".cache" / "polymodal" / "features")


class FeatureCache:
    """Content-addressed store of preprocessed tensors.

    Args:
        root: Folder holding the entries (created on first write).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        # Each transform's settings() text, computed once; the transform is kept so that its id stays its own.
        self._settings: dict[int, tuple[Transform, str]] = {}
        self._root = str(self.root)
        self._folders: set[str] = set()  # entry folders known to exist (one mkdir each)
        self._count = itertools.count()
        # Features the first pass's pool sent back, by the cell (an array's identity: the very object the screening
        # pass reads; a path's text) and the transform's identity: no hashing or reading back in this process, whose
        # serial time bounds the pass.
        self.held: dict[tuple[int | str, int], tuple[Any, Transform, torch.Tensor]] = {}

    def key(self, cell: str | np.ndarray, transform: Transform) -> str | None:
        """The entry name for a file cell (its bytes) or an array cell (its dtype, shape and bytes), or None when
        the path is not a readable file."""
        if isinstance(cell, np.ndarray):
            digest = hashlib.sha256(f"array|{cell.dtype.str}|{cell.shape}|".encode())
            digest.update(np.ascontiguousarray(cell).data)
        else:
            try:
                with open(cell, "rb") as f:
                    digest = hashlib.file_digest(f, "sha256")
            except OSError:
                return None  # let the transform raise its own error message
        known = self._settings.get(id(transform))
        if known is None or known[0] is not transform:
            known = self._settings[id(transform)] = (transform, transform.settings())
        settings = known[1]
        digest.update(settings.encode())
        return digest.hexdigest()

    def hold(self, cell: np.ndarray | str, transform: Transform, x: torch.Tensor) -> None:
        """Keep ``x``, computed from ``cell`` (an array, or a file's path) by another process, in memory until
        :meth:`release`: the first pass's screening then takes it instead of computing it again (a disk entry would
        cost more to write and read back than a small array's features cost to compute) or hashing and reading back
        the file's entry. Valid while neither ``cell`` nor ``transform`` (nor the file) changes: within one first
        pass, which releases it."""
        self.held[held_key(cell), id(transform)] = (cell, transform, x)  # the objects kept, so their ids stay theirs

    def release(self) -> None:
        """Forget the held features (after the first pass, whose datasets keep what they need)."""
        self.held.clear()

    def get_or_compute(self, cell: Any, transform: Transform) -> torch.Tensor:
        """``transform(cell)``, served from the cache when ``cell`` is a file path or array seen before."""
        x = self.get_or_compute_many([cell], transform)[0]
        if isinstance(x, PolymodalError):
            raise x
        return x

    def get_or_compute_many(self, cells: list[Any], transform: Transform) -> list[torch.Tensor | PolymodalError]:
        """:meth:`get_or_compute` of each cell, an error in place of a cell that has one; the cells the cache does
        not have are computed together (:meth:`Transform.many`)."""
        out: list[Any] = [None] * len(cells)
        todo: list[tuple[int, str | None]] = []  # (index, entry to write or None)
        for i, cell in enumerate(cells):
            held = self.held.get((held_key(cell), id(transform))) if self.held else None
            # A path is held by its text (any string of it matches); an array only by being the very object.
            if held is not None and (isinstance(cell, str) or held[0] is cell) and held[1] is transform:
                self.hits += 1
                out[i] = held[2]
                continue
            key = self.key(cell, transform) if cacheable(cell, transform) else None
            entry = None if key is None else f"{self._root}/{key[:2]}/{key}.safetensors"  # str: pathlib costs 0.1 ms
            out[i] = self.read(entry) if entry is not None else None
            if out[i] is None:
                todo.append((i, entry))
        computed = transform.many([cells[i] for i, _ in todo]) if todo else []
        for (i, entry), x in zip(todo, computed, strict=True):
            out[i] = x
            if entry is not None and isinstance(x, torch.Tensor):
                self.misses += 1
                self.write(entry, x)
        return out

    def read(self, entry: str) -> torch.Tensor | None:
        """An entry's tensor, or None when there is none (or it cannot be read)."""
        if not os.path.isfile(entry):
            return None
        try:
            x = load_file(entry)["x"]
        except (SafetensorError, OSError, KeyError):
            log.warning("ignoring unreadable cache entry %s", entry)
            return None
        self.hits += 1
        return x

    def write(self, entry: str, x: torch.Tensor) -> None:
        """Store ``x`` as ``entry``, atomically; a full or read-only disk only costs speed (a warning)."""
        folder = os.path.dirname(entry)
        if folder not in self._folders:
            os.makedirs(folder, exist_ok=True)
            self._folders.add(folder)
        # A name no other process or thread writes (pid, thread, count), then one rename. (tempfile.mkstemp cost
        # 0.27 ms per entry here, a quarter of the write.) safetensors' numpy writer takes half the time of its
        # torch one (0.05 against 0.1 ms for a (1, 32, 80) log-mel); the file is the same format.
        tmp = f"{folder}/.tmp-{os.getpid()}-{threading.get_ident()}-{next(self._count)}"
        try:
            try:
                data = save_numpy({"x": np.ascontiguousarray(x.numpy())})
            except (TypeError, RuntimeError):  # a dtype numpy lacks (bfloat16), or a tensor needing grad
                data = save({"x": x.contiguous()})
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, entry)
        except (OSError, SafetensorError) as exc:
            log.warning("feature cache write failed (%s); continuing without it", exc)
            if os.path.exists(tmp):
                os.unlink(tmp)
