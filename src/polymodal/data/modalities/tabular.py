"""Tabular columns: numeric (standardised, NaN policy) and categorical (indices, unseen -> 0).

The input spans several columns (``columns:`` in the recipe), so a cell is a ``{column: value}`` mapping.
Output: (N_num + N_cat,) float; categorical indices are stored as floats and the encoder embeds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from polymodal.data.modalities.base import Transform
from polymodal.errors import DataError
from polymodal.registry import MODALITIES


@dataclass
class TabularPreprocessing:
    """Recipe keys under ``preprocessing`` for a tabular input."""

    categorical: list[str] = field(default_factory=list)  # these columns are categories; the rest numbers
    nan_policy: Literal["mean", "zero", "raise"] = "mean"  # a missing number: training mean, 0, or an error


def is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


@MODALITIES.register("tabular", TabularPreprocessing)
class TabularTransform(Transform):
    """Standardise numeric columns and index categorical ones with statistics fitted on the training split."""

    files = False
    EXAMPLE_CONFIG: dict[str, Any] = {"categorical": ["parity"]}  # what example_cells' rows need

    def __init__(self, categorical: list[str], nan_policy: str) -> None:
        self.categorical, self.nan_policy = list(categorical), nan_policy
        self.numeric: list[str] = []
        self.mean: list[float] = []
        self.std: list[float] = []
        self.vocab: dict[str, list[str]] = {}

    def number(self, column: str, value: Any) -> float:
        if is_missing(value):
            if self.nan_policy == "raise":
                raise DataError(f"column '{column}' is empty; fill it or set preprocessing.nan_policy: mean|zero")
            return math.nan
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise DataError(f"column '{column}' value '{value}' is not a number; list it under categorical") from None
        if math.isinf(x):
            raise DataError(f"column '{column}' value '{value}' is infinite; clean the table")
        return x

    def fit_number(self, column: str, value: Any) -> float:
        """``number`` for the statistics: a value it refuses counts as missing here, and the row's own
        preprocessing refuses it with the row's number (``data.on_error: raise``) or drops the row (``skip``)."""
        try:
            return self.number(column, value)
        except DataError:
            return math.nan

    def fit(self, values: list[Any]) -> None:
        if not values or not isinstance(values[0], dict):
            raise DataError("a tabular input needs 'columns: [...]' in the recipe (each cell is a row of columns)")
        unknown = sorted(set(self.categorical) - set(values[0]))
        if unknown:
            raise DataError(f"categorical columns {unknown} are not among the input's columns {sorted(values[0])}")
        self.numeric = [c for c in values[0] if c not in self.categorical]
        nums = np.array([[self.fit_number(c, row[c]) for c in self.numeric] for row in values], dtype=np.float64)
        nums = nums.reshape(len(values), len(self.numeric))
        self.mean = np.nan_to_num(np.nanmean(nums, axis=0) if len(nums) else nums.sum(0)).tolist()
        self.std = (np.nan_to_num(np.nanstd(nums, axis=0)) + 1e-8).tolist() if len(nums) else []
        # Index 0 is reserved for categories never seen in training (and missing ones).
        self.vocab = {c: sorted({str(row[c]) for row in values if not is_missing(row[c])}) for c in self.categorical}

    def state_dict(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "mean": self.mean, "std": self.std, "vocab": self.vocab}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.numeric, self.mean, self.std = state.get("numeric", []), state.get("mean", []), state.get("std", [])
        self.vocab = state.get("vocab", {})

    def context(self) -> dict[str, Any]:
        return {"num_numeric": len(self.numeric), "cardinalities": [len(self.vocab[c]) + 1 for c in self.categorical]}

    @classmethod
    def example_cells(cls, n: int, folder: Path) -> list[Any]:
        """Rows of numbers measured on real MNIST digits (ink, height of the ink's centre) and a category."""
        from polymodal.data.datasets.mnist import mnist_arrays

        images, labels = mnist_arrays()
        rows = []
        for img, label in zip(images[:n], labels[:n], strict=True):
            ink = img.astype(np.float64) / 255.0
            centre = float((ink.sum(1) * np.arange(28)).sum() / max(ink.sum(), 1e-9))
            rows.append({"ink": float(ink.mean()), "centre": centre, "parity": "even" if label % 2 == 0 else "odd"})
        return rows

    def corrupt(self, value: Any, x: torch.Tensor, level: float, rng: np.random.Generator) -> torch.Tensor:
        """Gaussian noise of standard deviation ``level`` on the standardised numeric columns, and each
        categorical value replaced by "unknown" with probability ``level``."""
        x = x.clone()
        n = len(self.numeric)
        x[:n] += level * torch.from_numpy(rng.standard_normal(n).astype(np.float32))
        lost = torch.from_numpy(rng.random(len(x) - n) < level)
        x[n:] = x[n:].masked_fill(lost, 0.0)
        return x

    def __call__(self, cell: Any) -> torch.Tensor:
        if not isinstance(cell, dict):
            raise DataError("a tabular cell must be a {column: value} row; set 'columns: [...]' on the input")
        missing = [c for c in self.numeric + self.categorical if c not in cell]
        if missing:
            raise DataError(f"row lacks tabular columns {missing}")
        out = []
        for c, mean, std in zip(self.numeric, self.mean, self.std, strict=True):
            x = self.number(c, cell[c])
            out.append(0.0 if math.isnan(x) and self.nan_policy == "zero" else (mean if math.isnan(x) else x))
            out[-1] = (out[-1] - mean) / std
        for c in self.categorical:
            v = cell[c]
            index = {k: i + 1 for i, k in enumerate(self.vocab[c])}
            out.append(float(0 if is_missing(v) else index.get(str(v), 0)))
        return torch.tensor(out, dtype=torch.float32)  # (N_num + N_cat,)
