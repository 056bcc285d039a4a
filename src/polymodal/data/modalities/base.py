"""The shape every modality transform shares.

A transform turns one table cell into one example tensor. Its parts:

- ``__call__(value)``: deterministic decode + preprocess (its output may be cached in memory or on disk);
- ``augment(x)``: random training-time augmentation on that tensor (identity by default; uses torch's
  global RNG, which the trainer seeds and checkpoints);
- ``augment_example(value, x)``: what the training split calls: ``augment(x)`` by default; a modality whose
  augmentation must start before ``__call__``'s cached output (audio's speed perturbation works on the
  waveform) starts again from the cell ``value``;
- ``fit(values)``: learn statistics or a vocabulary from the training split's cells (no-op by default);
- ``see_labels(classes)``: the run's class names, told before ``fit`` (a text input removes their words
  when asked, see polymodal.data.leak; no-op by default);
- ``state_dict()`` / ``load_state_dict()``: what ``fit`` learnt, as JSON-able data saved with the run;
- ``context()``: extra keyword arguments the modality's encoders are built with (e.g. ``vocab_size``);
- ``corrupt(value, x, level, rng)``: a noisy version of the example (cell ``value``, clean tensor ``x``) for
  robustness tests; ``level`` is a severity in [0, 1] whose meaning each modality documents.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polymodal.data.arrays import NPY_ERRORS  # noqa: F401  re-exported: what numpy raises on a damaged .npy
from polymodal.errors import DataError, PolymodalError, printable


def file_cell(value: Any, what: str) -> Path:
    """A cell that names a file, as an existing file's path; anything else is one DataError line."""
    if not isinstance(value, (str, Path)):
        raise DataError(f"a {what} cell must be a file path, got {type(value).__name__}; fix the table's {what} column")
    try:
        path = Path(value)
        if path.is_file():
            return path
    except (OSError, ValueError):  # a NUL byte, a name longer than the file system allows
        raise DataError(f"{what} file name {str(value)[:80]!r} is not a usable path; fix the table's cell") from None
    raise DataError(f"{what} file not found: {printable(value)}")  # a cell may hold a newline


def number_array(value: np.ndarray, what: str, dtype: type = np.float32) -> np.ndarray:
    """``value`` as ``dtype``; strings, complex numbers, records or objects that are not numbers are one DataError."""
    if value.dtype.kind not in "biufO":
        raise DataError(f"{what} array has dtype {value.dtype}; give real numbers")
    try:
        return np.ascontiguousarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise DataError(f"{what} array holds values that are not numbers (or rows of unequal length)") from None


def pixel_noise(x: torch.Tensor, mean: float, std: float, level: float, rng: np.random.Generator) -> torch.Tensor:
    """Gaussian noise of standard deviation ``level`` on the [0, 1] intensity scale of a normalised image
    tensor (``(x - mean) / std``), clipped to [0, 1] before normalising again."""
    img = x * std + mean
    img = img + level * torch.from_numpy(rng.standard_normal(img.shape).astype(np.float32))
    return (img.clamp(0, 1) - mean) / std


class Transform:
    """Base class with the defaults; subclasses override what their modality needs."""

    files = True  # a string cell names a file, relative to the table's folder (False: the text is the value)

    def __call__(self, value: Any) -> torch.Tensor:
        raise NotImplementedError

    def many(self, values: list[Any]) -> list[torch.Tensor | PolymodalError]:
        """``self(value)`` for each value, an error in place of a value that has one: what the first pass's pool
        computes a chunk of cells with. A modality whose per-cell work is mostly per-call overhead computes them
        together (audio) and gives each cell what ``self(value)`` gives, bit for bit."""
        out: list[torch.Tensor | PolymodalError] = []
        for value in values:
            try:
                out.append(self(value))
            except PolymodalError as exc:
                out.append(exc)
        return out

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def augment_example(self, value: Any, x: torch.Tensor) -> torch.Tensor:
        return self.augment(x)

    @property
    def recomputes(self) -> bool:
        """Whether a training example's augmentation computes its features again (worth loading workers:
        ``data.num_workers: auto``)."""
        return False

    @property
    def cache_arrays(self) -> bool:
        """Whether features computed from an in-memory array cell deserve a disk entry in the feature cache.
        Hashing the array and writing and reading the entry cost about what a cheap transform does (a log-mel of a
        4,000-sample waveform: 0.16 ms either way), so a transform whose work on arrays is cheap says False; one
        with a costly front end (a pretrained network) keeps the default. File cells are always cached."""
        return True

    @property
    def augments(self) -> bool:
        """Whether ``augment_example`` may draw random numbers: the training loop seeds each row only then (a
        seed per row costs ~0.6 ms). A subclass that overrides augmentation says when all its keys are off."""
        cls = type(self)
        return cls.augment is not Transform.augment or cls.augment_example is not Transform.augment_example

    def fit(self, values: list[Any]) -> None:
        return None

    def see_labels(self, classes: list[str]) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None

    def context(self) -> dict[str, Any]:
        return {}

    def corrupt(self, value: Any, x: torch.Tensor, level: float, rng: np.random.Generator) -> torch.Tensor:
        """Default: Gaussian noise of standard deviation ``level`` on a float tensor (features here are
        standardised, so ``level`` is in units of their spread); integer tensors are returned unchanged."""
        if not x.is_floating_point():
            return x
        return x + level * torch.from_numpy(rng.standard_normal(x.shape).astype(np.float32))

    @classmethod
    def example_cells(cls, n: int, folder: Path) -> list[Any]:
        """``n`` real cells this modality reads (files may be written in ``folder``), for the contract test."""
        raise NotImplementedError(f"{cls.__name__} has no example cells")

    def settings(self) -> str:
        """A stable text of the settings that determine ``__call__``'s output (for cache keys)."""
        fields = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        fields["state"] = self.state_dict()
        return f"{type(self).__name__}:{json.dumps(fields, sort_keys=True, default=str)}"
