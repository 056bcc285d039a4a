"""Outputs of a frozen sub-network remembered per input row, so a fixed pretrained encoder runs once per example.

A frozen pretrained encoder (MiniLM text, EfficientNet's frozen blocks) computes the same output for the same
input every epoch; on a CPU that recomputation is most of a run's time. ``FrozenOutputs`` keys each row by a
hash of its bytes (and dtype, shape and autocast state), computes only the rows it has not seen and returns the
stored ones for the rest. It steps aside where remembering would be wrong or useless: a tensor on an
accelerator, tracing/export/compile, or a frozen part that needs gradients after all. The module that owns it
clears it whenever weights are loaded, and it stops storing (but keeps serving) past ``max_bytes``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch

MAX_BYTES = 1 << 30  # 1 GiB of remembered outputs per encoder


def remembering(x: torch.Tensor) -> bool:
    """Whether outputs for ``x`` may be looked up: eager CPU execution, nothing being traced or exported."""
    if x.device.type != "cpu" or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    return not (torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export())


class FrozenOutputs:
    """Per-row memo of ``fn(x)`` for a deterministic ``fn`` whose parameters do not change.

    Args:
        max_bytes: Stop storing new rows once this many bytes of outputs are held.
    """

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes, self.bytes = max_bytes, 0
        self.rows: dict[bytes, torch.Tensor] = {}

    def clear(self) -> None:
        self.rows.clear()
        self.bytes = 0

    def __deepcopy__(self, memo: dict) -> FrozenOutputs:
        return FrozenOutputs(self.max_bytes)  # a copied model (pruning, quantisation) starts empty

    def key(self, row: torch.Tensor) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{row.dtype}{tuple(row.shape)}{torch.is_autocast_enabled('cpu')}".encode())
        h.update(row.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.digest()

    def __call__(self, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``fn(x)``, computing only rows not seen before."""
        if not remembering(x) or torch.is_grad_enabled() and x.requires_grad:
            return fn(x)
        keys = [self.key(row) for row in x.detach()]
        missing = [i for i, k in enumerate(keys) if k not in self.rows]
        fresh: dict[bytes, torch.Tensor] = {}
        if missing:
            out = fn(x[missing]).detach()
            for i, row in zip(missing, out, strict=True):
                fresh[keys[i]] = row
                if self.bytes + row.nbytes <= self.max_bytes:
                    self.rows[keys[i]] = row.clone()  # a clone does not keep the whole batch alive
                    self.bytes += row.nbytes
        return torch.stack([fresh[k] if k in fresh else self.rows[k] for k in keys])
