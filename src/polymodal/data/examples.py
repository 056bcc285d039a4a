"""One table's rows as a torch dataset of examples, and the collate that batches them."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from polymodal.data.cache import FeatureCache
from polymodal.data.loading import Loading
from polymodal.data.store import StoreReader


def is_missing(value: Any) -> bool:
    """An absent cell: None, NaN, an empty string, or a multi-column cell whose columns are all absent."""
    if value is None:
        return True
    if isinstance(value, float) and value != value:
        return True
    if isinstance(value, str) and not value.strip():
        return True
    if isinstance(value, dict):
        return bool(value) and all(is_missing(v) for v in value.values())
    return value is pd.NA or value is pd.NaT


class ExampleDataset(Dataset):
    """Rows of a table, each turned into ``({input: tensor}, {input: present}, class index)``.

    A missing cell (see :func:`is_missing`) becomes a zero tensor of the input's shape with its present flag
    False; the model then leaves that modality out.

    Args:
        columns: ``{input name: list of cell values}`` (paths already made absolute).
        targets: Target per row (class index, multi-hot vector or task values).
        transforms: ``{input name: Transform}``.
        cache: Keep each preprocessed example in memory after its first use, so later epochs skip decoding
            and feature extraction (``__call__`` is deterministic; augmentation runs after the cache, from the cached
            tensor or, for ``augment_example``, from the cell).
        augment: Apply each transform's random ``augment_example`` (training split only).
        disk_cache: Optional on-disk cache for cells that are files (survives across runs).
    """

    def __init__(
        self,
        columns: dict[str, list[Any]],
        targets: np.ndarray,
        transforms: dict[str, Any],
        cache: bool = True,
        augment: bool = False,
        disk_cache: FeatureCache | None = None,
    ) -> None:
        self.columns, self.targets, self.transforms = columns, torch.as_tensor(targets), transforms
        self.augment, self.disk_cache = augment, disk_cache
        self._cache: dict[int, dict[str, torch.Tensor | None]] | None = {} if cache else None
        self.shapes: dict[str, tuple[int, ...]] = {}  # per input, for placeholders of missing cells
        self.dtypes: dict[str, torch.dtype] = {}  # token ids stay integer in a placeholder
        self.removed: frozenset[str] = frozenset()  # inputs treated as missing in every row
        self.table_rows: np.ndarray | None = None  # each example's row in the table it came from, for messages
        self.loading = Loading()  # how its training batches are loaded (data.num_workers and friends)
        self.store: StoreReader | None = None  # rows read from a memory-mapped feature store (data.store)
        self.corruption: tuple[str, float, int] | None = None  # (input, level, seed) for robustness tests

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def augments(self) -> bool:
        """Whether its rows draw random augmentations: a training split with some input's augmentation on."""
        return self.augment and any(self.transforms[k].augments for k in self.columns)

    def preprocess(self, i: int) -> dict[str, torch.Tensor | None]:
        """The cached tensors of row ``i``; None where the cell is missing."""
        if self.store is not None:
            return self.store[i]
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        example: dict[str, torch.Tensor | None] = {}
        for k, col in self.columns.items():
            if is_missing(col[i]):
                example[k] = None
            elif self.disk_cache is not None:
                example[k] = self.disk_cache.get_or_compute(col[i], self.transforms[k])
            else:
                example[k] = self.transforms[k](col[i])
        if self._cache is not None:
            self._cache[i] = example
        return example

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[dict[str, torch.Tensor], dict[str, bool], torch.Tensor]:
        """Row ``key``, or ``(row, seed)``: the row with its augmentation drawn from its own seed (the training
        loop passes one per row and epoch, so the draws do not depend on how many workers load the rows)."""
        if isinstance(key, tuple):
            i, seed = key
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return self[i]
        i = key
        example = dict(self.preprocess(i))
        if self.corruption is not None:
            name, level, seed = self.corruption
            if example[name] is not None and level > 0:
                rng = np.random.default_rng([seed, i])
                example[name] = self.transforms[name].corrupt(self.columns[name][i], example[name], level, rng)
        present = {k: v is not None and k not in self.removed for k, v in example.items()}
        out = {}
        for k, v in example.items():
            if not present[k]:
                out[k] = torch.zeros(self.shapes[k], dtype=self.dtypes.get(k, torch.float32))
            else:
                out[k] = self.transforms[k].augment_example(self.columns[k][i], v) if self.augment else v
        return out, present, self.targets[i]

    def view(
        self, removed: frozenset[str] = frozenset(), corruption: tuple[str, float, int] | None = None
    ) -> ExampleDataset:
        """The same rows (sharing the cache) with inputs removed or one input corrupted; no augmentation."""
        out = copy.copy(self)
        out.removed, out.corruption, out.augment = frozenset(removed), corruption, False
        return out

    def subset(self, keep: np.ndarray) -> ExampleDataset:
        """The rows ``keep`` (indices) as a new dataset sharing transforms and already-cached examples."""
        out = ExampleDataset(
            {k: [col[i] for i in keep] for k, col in self.columns.items()},
            self.targets.numpy()[keep],
            self.transforms,
            self._cache is not None,
            self.augment,
            self.disk_cache,
        )
        out.shapes, out.dtypes = self.shapes, self.dtypes
        out.table_rows = self.table_rows[keep] if self.table_rows is not None else None
        out.store, out.loading = (self.store.take(keep) if self.store is not None else None), self.loading
        if self._cache is not None:
            out._cache = {j: self._cache[i] for j, i in enumerate(keep) if i in self._cache}
        return out


Example = tuple[dict[str, torch.Tensor], dict[str, bool], torch.Tensor]


def collate(
    batch: list[Example],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, torch.Tensor]:
    """Stack each input across the batch: ``{name: (B, ...)}``, presence ``{name: (B,) bool}`` (None when
    nothing is missing) and targets (B, ...)."""
    inputs = {k: torch.stack([x[k] for x, _, _ in batch]) for k in batch[0][0]}
    flags = {k: torch.tensor([p[k] for _, p, _ in batch]) for k in batch[0][1]}
    present = None if all(bool(f.all()) for f in flags.values()) else flags
    return inputs, present, torch.stack([y for _, _, y in batch])
