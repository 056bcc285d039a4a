"""A feature store that streams: a split's preprocessed examples written once to memory-mapped ``.npy`` shards and
read row by row during training, so a table whose features exceed RAM trains (``data.store: true``).

Why ``.npy``: numpy writes it a row at a time into a file it maps (``open_memmap``), so the store is built without
holding it in memory, and reads a row as a zero-copy slice of the mapping; the format is a 128-byte header and raw
data, readable by anything for decades, and numpy is already here. safetensors maps tensors for reading too, but
writes a file only from tensors held whole in memory; Arrow (``datasets``) streams, but adds a large dependency and
copies each row into Python objects before it becomes a tensor.

Layout under ``<disk_cache_dir>/store/<key>/``: ``<input>.npy`` (N, ...) per input (a missing cell is zeros),
``present.npy`` (N, inputs) and ``meta.json`` (rows, each input's shape and dtype, the key and the preprocessing
settings). The key is the sha256 of every cell's content (a file's bytes, as the feature cache reads them; an
array's bytes; a value's text) and every input's preprocessing settings and fitted state: a store built from other
data or another setting has another key, so it is never read by mistake. The folder is written under a temporary
name and renamed when complete. A store that is incomplete or damaged anyway (a file shorter than its header says,
a meta.json that does not match) is rebuilt, with a warning saying why: it is derived data, rebuilt from the table
in one pass, so refusing to train would only make the user delete a folder by hand.

Rows are read through the page cache: the kernel keeps the pages that fit and drops the rest, so the training
process's memory stays bounded by what it maps in at once, not by the store's size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polymodal.data.cache import FeatureCache, numeric_array
from polymodal.errors import DataError

log = logging.getLogger(__name__)
VERSION = 1
FLUSH_BYTES = 64 * 2**20  # while writing, written rows are flushed to disk every this many bytes


def store_key(columns: dict[str, list[Any]], transforms: dict[str, Any], cache: FeatureCache) -> str:
    """The sha256 of every cell's content and every input's preprocessing (see the module docstring)."""
    h = hashlib.sha256(f"store-v{VERSION}".encode())
    for name in sorted(columns):
        transform = transforms[name]
        h.update(f"\x00{name}\x00{transform.settings()}\x00".encode())
        for cell in columns[name]:
            # Every array by its bytes (numpy's repr of a large array elides its middle, so it cannot key one).
            key = cache.key(cell, transform) if isinstance(cell, str) or numeric_array(cell) else None
            h.update((key or repr(cell)).encode() + b"\x01")
    return h.hexdigest()


class StoreReader:
    """Rows of a written store, mapped read-only (opened lazily, so each forked loading worker maps its own).

    Args:
        folder: The store's folder.
        rows: Which stored rows this dataset's rows are (default all, in order).
    """

    def __init__(self, folder: Path, rows: np.ndarray | None = None) -> None:
        self.folder = folder
        self.meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        self.names: list[str] = list(self.meta["inputs"])
        self.rows = np.arange(self.meta["rows"]) if rows is None else rows
        self._maps: dict[str, np.ndarray] | None = None

    def maps(self) -> dict[str, np.ndarray]:
        if self._maps is None:
            self._maps = {name: np.load(self.folder / f"{name}.npy", mmap_mode="r") for name in self.names}
            self._maps["__present__"] = np.load(self.folder / "present.npy", mmap_mode="r")
        return self._maps

    def __getitem__(self, i: int) -> dict[str, torch.Tensor | None]:
        maps, row = self.maps(), int(self.rows[i])
        present = maps["__present__"][row]
        return {
            name: torch.from_numpy(np.array(maps[name][row])) if present[k] else None
            for k, name in enumerate(self.names)
        }

    def take(self, keep: np.ndarray) -> StoreReader:
        out = StoreReader.__new__(StoreReader)
        out.folder, out.meta, out.names, out.rows, out._maps = self.folder, self.meta, self.names, self.rows[keep], None
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": None}  # a process that receives it maps the files itself


def damaged(folder: Path) -> str | None:
    """Why a store folder cannot be read as it is, or None when it is complete."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        n = int(meta["rows"])
        for name, spec in [*meta["inputs"].items(), ("present", {"shape": [len(meta["inputs"])], "dtype": "|b1"})]:
            arr = np.load(folder / f"{name}.npy", mmap_mode="r")
            if arr.shape != (n, *spec["shape"]) or arr.dtype.str != np.dtype(spec["dtype"]).str:
                return f"{name}.npy holds {arr.dtype} {arr.shape}, meta.json says {spec['dtype']} {[n, *spec['shape']]}"
    except (OSError, ValueError, KeyError, TypeError) as exc:  # numpy: "mmap length is greater than file size"
        return f"{type(exc).__name__}: {exc}"
    return None


def write_store(ds: Any, folder: Path, key: str) -> None:
    """Write every row of ``ds`` (an ExampleDataset: ``preprocess(i)`` gives a row's tensors) into ``folder``,
    a row at a time into memory-mapped files, then rename the finished folder into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    try:
        n, names = len(ds), sorted(ds.columns)
        first = {name: None for name in names}
        for i in range(n):  # each input's shape and dtype from its first present row
            example = ds.preprocess(i)
            first.update({k: v for k, v in example.items() if first[k] is None and v is not None})
            if all(v is not None for v in first.values()):
                break
        specs = {
            k: {"shape": list(v.shape), "dtype": str(v.numpy().dtype)}
            if v is not None
            else {"shape": [], "dtype": "float32"}
            for k, v in first.items()
        }
        open_map = np.lib.format.open_memmap
        maps = {k: open_map(tmp / f"{k}.npy", "w+", np.dtype(s["dtype"]), (n, *s["shape"])) for k, s in specs.items()}
        present = open_map(tmp / "present.npy", "w+", np.bool_, (n, len(names)))
        row_bytes = sum(m[0].nbytes for m in maps.values()) if n else 1
        every = max(1, FLUSH_BYTES // max(row_bytes, 1))
        for i in range(n):
            if i and i % every == 0:  # written pages become clean pages the kernel may drop: memory stays bounded
                for m in maps.values():
                    m.flush()
            example = ds.preprocess(i)
            for k, name in enumerate(names):
                x = example[name]
                if x is None:
                    continue
                if list(x.shape) != specs[name]["shape"]:
                    raise DataError(
                        f"input '{name}' gives rows of shapes {specs[name]['shape']} and {list(x.shape)}; the feature "
                        "store holds one shape per input: fix the preprocessing to one size, or set data.store: false"
                    )
                maps[name][i] = x.numpy()
                present[i, k] = True
        for m in [*maps.values(), present]:
            m.flush()
        del maps, present
        settings = {name: ds.transforms[name].settings() for name in names}
        meta = {"version": VERSION, "key": key, "rows": n, "inputs": specs, "settings": settings}
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def open_store(ds: Any, root: Path) -> StoreReader:
    """The store of ``ds``'s rows under ``root``: read if a complete one with its key is there, else (re)built."""
    assert ds.disk_cache is not None
    key = store_key(ds.columns, ds.transforms, ds.disk_cache)
    folder = root / key[:32]
    why = damaged(folder) if folder.exists() else "absent"
    if why is None and json.loads((folder / "meta.json").read_text(encoding="utf-8")).get("key") != key:
        why = "its meta.json was written for other data or settings"
    if why is not None:
        if why != "absent":
            log.warning("feature store %s is unusable (%s); building it again", folder, why)
        write_store(ds, folder, key)
        log.info("feature store %s: %d rows written", folder, len(ds))
    return StoreReader(folder)
