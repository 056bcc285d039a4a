"""Sensor time-series: arrays, .npy/.csv files, or several streams aligned on a common clock.

Output: (max_length, C + 1). The last channel is a validity mask (1 = real step, 0 = padding), so a
variable-length batch keeps one tensor per example and encoders can mask their pooling and attention.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field

from polymodal.data.arrays import (
    FLOAT32_MAX,
    MAX_SERIES_ELEMENTS,
    NPY_ERRORS,
    check_elements,
    element_shape,
    list_shape,
    load_npy,
)
from polymodal.data.modalities.base import Transform, file_cell, number_array
from polymodal.errors import DataError
from polymodal.registry import MODALITIES

TIME_COLUMN = "timestamp"
# A CSV holding MAX_SERIES_ELEMENTS values needs well under 32 bytes a value (17 digits, sign, exponent, comma);
# a larger file is refused by its size before pandas parses it.
MAX_SERIES_CSV_BYTES = 32 * MAX_SERIES_ELEMENTS
# Sequence keys bound the (max_length, C + 1) tensor each example becomes and the T² attention of ts_transformer:
# at 65,536 steps one example's attention map is already 16 GB per head.
MAX_STEPS = 65_536


@dataclass
class TimeSeriesPreprocessing:
    """Recipe keys under ``preprocessing`` for a timeseries input."""

    max_length: Annotated[int, Field(ge=1, le=MAX_STEPS)] = 128
    resample_to: Annotated[int, Field(ge=0, le=MAX_STEPS)] = 0  # 0 keeps each series' own length
    normalize: Literal["channel", "none"] = "channel"
    nan_policy: Literal["raise", "zero", "interpolate"] = "raise"
    clock_hz: Annotated[float, Field(ge=0)] = 0.0  # common clock for timestamped streams; 0 = finest stream's
    jitter: Annotated[float, Field(ge=0)] = 0.0  # training-time Gaussian noise (in normalised units)
    scale: Annotated[float, Field(ge=0)] = 0.0  # training-time per-channel gain spread
    # Training-time windowing: each epoch sees a random window of this many steps of each series (0 = off);
    # evaluation sees the whole series, which the masked-pooling encoders accept at any length.
    window: Annotated[int, Field(ge=0, le=MAX_STEPS)] = 0


def read_stream(value: Any) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(T, C) values, optional (T,) timestamps, and a name for messages; a series with no steps is refused."""
    arr, times, name = read_values(value)
    if arr.ndim != 2:
        raise DataError(f"series {name} has shape {arr.shape}; give steps (T,) or steps × channels (T, C)")
    if len(arr) == 0:
        raise DataError(f"series {name} has no steps; give at least one (or leave the cell empty: missing)")
    return arr, times, name


def read_values(value: Any) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(T, C) values, optional (T,) timestamps, and a name for messages."""
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype == object):
        # The shape the first step declares, checked before numpy copies every step (Parquet gives object arrays).
        shape = (
            list_shape(value)
            if isinstance(value, (list, tuple))
            else (len(value), *element_shape(value[0] if len(value) else ()))
        )
        check_elements("series cell", shape, MAX_SERIES_ELEMENTS, "a series")
        try:  # steps as numbers or as lists of channel values (how a Parquet table gives them back)
            value = np.array([np.asarray(step, dtype=np.float64) for step in value], dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError("a series cell must be a list of steps, each a number or a list of channels") from None
    if isinstance(value, np.ndarray):
        check_elements("series array", value.shape, MAX_SERIES_ELEMENTS, "a series")
        arr = value[:, None] if value.ndim == 1 else value
        return number_array(arr, "series", np.float64), None, "array"
    path = file_cell(value if isinstance(value, Path) else str(value), "series")
    if path.suffix.lower() == ".npy":
        arr = load_npy(path, f"series {path}", MAX_SERIES_ELEMENTS, "a series")
        return number_array(arr[:, None] if arr.ndim == 1 else arr, f"series {path}", np.float64), None, str(path)
    if path.stat().st_size > MAX_SERIES_CSV_BYTES:
        raise DataError(
            f"series {path} is {path.stat().st_size:,} bytes, over polymodal's limit of {MAX_SERIES_CSV_BYTES:,} "
            "for a series CSV; downsample or split it"
        )
    try:
        frame = pd.read_csv(path)
    except (*NPY_ERRORS, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read series {path}: {str(exc).splitlines()[0]}") from None
    times = frame.pop(TIME_COLUMN).to_numpy(np.float64) if TIME_COLUMN in frame else None
    try:
        return frame.to_numpy(np.float64), times, str(path)
    except ValueError:
        raise DataError(f"series {path} has non-numeric columns; keep only numbers (and '{TIME_COLUMN}')") from None


def resample(arr: np.ndarray, length: int) -> np.ndarray:
    """Linear interpolation of (T, C) onto ``length`` evenly spaced steps."""
    if len(arr) == length:
        return arr
    src = np.linspace(0.0, 1.0, len(arr))
    dst = np.linspace(0.0, 1.0, length)
    return np.stack([np.interp(dst, src, arr[:, c]) for c in range(arr.shape[1])], axis=1)


@MODALITIES.register("timeseries", TimeSeriesPreprocessing)
class TimeSeriesTransform(Transform):
    """Turn one series (or a mapping of streams) into a (max_length, C + 1) tensor with a mask channel."""

    def __init__(
        self,
        max_length: int,
        resample_to: int,
        normalize: str,
        nan_policy: str,
        clock_hz: float,
        jitter: float,
        scale: float,
        window: int = 0,
    ) -> None:
        self.max_length, self.resample_to, self.normalize = max_length, resample_to, normalize
        self.nan_policy, self.clock_hz, self.jitter, self.scale = nan_policy, clock_hz, jitter, scale
        self.window = window
        self.mean: list[float] | None = None
        self.std: list[float] | None = None
        self.channels: int | None = None

    def align(self, streams: dict[str, Any]) -> np.ndarray:
        """Put several streams on one clock: interpolate timestamped ones, else stretch to a common length."""
        if not streams:
            raise DataError("a series cell of streams is empty; give at least one {stream: series}")
        read = {k: read_stream(v) for k, v in sorted(streams.items())}
        if all(t is not None for _, t, _ in read.values()):
            start = max(t[0] for _, t, _ in read.values())
            end = min(t[-1] for _, t, _ in read.values())
            if end <= start:
                raise DataError(f"streams {list(read)} do not overlap in time; check their '{TIME_COLUMN}' columns")
            hz = self.clock_hz or max(1.0 / np.median(np.diff(t)) for _, t, _ in read.values())
            check_elements(
                f"streams {list(read)} on a {hz:g} Hz clock",
                (int((end - start) * hz) + 1, 1),
                MAX_SERIES_ELEMENTS,
                "a series",
            )
            clock = np.arange(start, end + 1e-9, 1.0 / hz)
            cols = [np.interp(clock, t, a[:, c]) for a, t, _ in read.values() for c in range(a.shape[1])]
            return np.stack(cols, axis=1)
        length = max(len(a) for a, _, _ in read.values())
        return np.concatenate([resample(a, length) for a, _, _ in read.values()], axis=1)

    def values(self, cell: Any) -> np.ndarray:
        """The raw (T, C) series of a cell after the NaN policy and resampling."""
        if isinstance(cell, dict):
            arr, name = self.align(cell), "streams " + ",".join(sorted(cell))
        else:
            arr, _, name = read_stream(cell)
        if arr.ndim != 2 or 0 in arr.shape:
            raise DataError(f"series {name} must be a non-empty (time, channels) table, got shape {arr.shape}")
        bad = ~np.isfinite(arr) | (np.abs(arr) > FLOAT32_MAX)  # 1e308 is finite as float64 but inf as float32
        if bad.any():
            row = int(np.flatnonzero(bad.any(axis=1))[0])
            if self.nan_policy == "raise":
                raise DataError(
                    f"series {name} has NaN/inf at row {row} (or a number beyond float32's range); clean it or set "
                    "nan_policy: zero|interpolate"
                )
            arr = arr.copy()
            if self.nan_policy == "zero":
                arr[bad] = 0.0
            else:
                steps = np.arange(len(arr))
                for c in np.flatnonzero(bad.any(axis=0)):
                    ok = ~bad[:, c]
                    arr[:, c] = np.interp(steps, steps[ok], arr[ok, c]) if ok.any() else 0.0
        return resample(arr, self.resample_to) if self.resample_to else arr

    def fit(self, values: list[Any]) -> None:
        arrays = [self.values(v) for v in values]
        self.channels = arrays[0].shape[1]
        flat = np.concatenate(arrays, axis=0)
        self.mean = flat.mean(axis=0).tolist()
        self.std = (flat.std(axis=0) + 1e-8).tolist()

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "channels": self.channels}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.std, self.channels = state.get("mean"), state.get("std"), state.get("channels")

    def context(self) -> dict[str, Any]:
        return {"channels": self.channels}

    def __call__(self, cell: Any) -> torch.Tensor:
        arr = self.values(cell)[: self.max_length]
        if self.channels is not None and arr.shape[1] != self.channels:
            raise DataError(f"series has {arr.shape[1]} channels but this input was fitted on {self.channels}")
        if self.normalize == "channel" and self.mean is not None:
            arr = (arr - np.asarray(self.mean)) / np.asarray(self.std)
        out = torch.zeros(self.max_length, arr.shape[1] + 1)
        out[: len(arr), :-1] = torch.from_numpy(arr.astype(np.float32))
        out[: len(arr), -1] = 1.0
        return out  # (T, C + 1)

    @classmethod
    def example_cells(cls, n: int, folder: Path) -> list[Any]:
        """Real multichannel series of different lengths: FSDD recordings' MFCC sequences (T, 13)."""
        from polymodal.data.datasets.fsdd import fsdd_mfcc_frame

        return list(fsdd_mfcc_frame()["audio"].iloc[:n])

    def corrupt(self, value: Any, x: torch.Tensor, level: float, rng: np.random.Generator) -> torch.Tensor:
        """Dropped timesteps: a fraction ``level`` of the valid steps lose their values and validity flag, the
        way a sensor that skips readings looks."""
        x = x.clone()
        valid = np.flatnonzero(x[:, -1].numpy() > 0.5)
        lost = rng.choice(valid, size=int(round(level * len(valid))), replace=False) if len(valid) else valid
        x[torch.from_numpy(lost).long()] = 0.0
        return x

    @property
    def cache_arrays(self) -> bool:
        return False  # resampling and standardising an array costs less than hashing it and writing the entry

    @property
    def augments(self) -> bool:
        return bool(self.window or self.jitter or self.scale)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        if self.window:
            x = self.random_window(x)
        if not (self.jitter or self.scale):
            return x
        mask = x[:, -1:]
        values = x[:, :-1] * (1 + self.scale * torch.randn(1, x.shape[1] - 1))
        values = values + self.jitter * torch.randn_like(values)
        return torch.cat([values * mask, mask], dim=1)

    def random_window(self, x: torch.Tensor) -> torch.Tensor:
        """Keep ``window`` consecutive valid steps from a random start, moved to the front; the rest is padding."""
        valid = int(x[:, -1].sum())
        if valid <= self.window:
            return x
        start = int(torch.randint(0, valid - self.window + 1, ()))
        out = torch.zeros_like(x)
        out[: self.window] = x[start : start + self.window]
        return out
