"""What a compressed model is compared on: serialized size, batch-1 latency and test-split metrics."""

from __future__ import annotations

import statistics
import time
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from polymodal.data.examples import collate

Forward = Callable[..., Any]  # (x_1, ..., x_M[, present]) -> logits (B, K), a Tensor or an array


def sizes(blob: bytes) -> dict[str, int]:
    """Bytes as stored, and after zlib level 6 (what zip/gzip make of it). Zeroed weights do not shrink a
    dense file, but they do compress: the second figure is where unstructured pruning shows on disk."""
    return {"size_bytes": len(blob), "compressed_bytes": len(zlib.compress(blob, 6))}


def positional(
    inputs: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None, names: list[str], uses_present: bool
) -> tuple[torch.Tensor, ...]:
    """A collated batch as the graph's positional inputs; ``present`` None (nothing missing) becomes all True."""
    xs = tuple(inputs[k] for k in names)
    if not uses_present:
        return xs
    b = xs[0].shape[0]
    mask = torch.stack([present[k] if present is not None else torch.ones(b, dtype=torch.bool) for k in names], 1)
    return (*xs, mask)  # ..., (B, M) bool


@torch.no_grad()
def outputs(
    forward: Forward, ds: Dataset, names: list[str], uses_present: bool, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Logits (N, K) float32 and targets (N, ...) over a whole split, in order."""
    batches = [list(range(i, min(i + batch_size, len(ds)))) for i in range(0, len(ds), batch_size)]
    loader = DataLoader(ds, batch_sampler=batches, collate_fn=collate, num_workers=0)
    outs, targets = [], []
    for inputs, present, y in loader:
        out = forward(*positional(inputs, present, names, uses_present))
        outs.append(np.asarray(out.numpy() if isinstance(out, torch.Tensor) else out, dtype=np.float32))
        targets.append(y.numpy())
    return np.concatenate(outs), np.concatenate(targets)


@torch.no_grad()
def latency_ms(forward: Forward, example: tuple[torch.Tensor, ...], repeats: int = 100, warmup: int = 10) -> float:
    """Median wall time of one call on a batch-1 ``example``, in milliseconds (the median, because a shared
    machine adds rare long outliers that would dominate a mean)."""
    for _ in range(warmup):
        forward(*example)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        forward(*example)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)
