"""Arrays from files, tables and JSON, checked before they cost memory: element caps, dtype, finite values.

A ``.npy`` header declares its shape and dtype; both are read and checked before ``numpy.load`` allocates the
array, so a 100-byte file claiming 10^12 elements is refused in microseconds. A nested JSON list's shape is read
from its first elements before ``numpy.asarray`` copies it.
"""

from __future__ import annotations

import io
import math
import tokenize
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from polymodal.errors import DataError

# An image array of 16.7M elements (4096×4096 greyscale, or 2365×2365 RGB) is already 134 MB as the float64
# copy a clip makes; the transform resizes it to at most 1024² anyway.
MAX_IMAGE_ELEMENTS = 4096 * 4096
# A series of 4.2M values (an hour of 3-axis 400 Hz sensor data) is 34 MB as float64, and interpolation or
# alignment makes a few copies; the longest shipped series (FSDD MFCCs) has under 2,000 values.
MAX_SERIES_ELEMENTS = 1 << 22
# What numpy raises on a damaged .npy (a truncated body, a mangled header dict; found by the fuzz tests).
NPY_ERRORS = (OSError, ValueError, EOFError, SyntaxError, tokenize.TokenError)
# Audio files and video soundtracks: only their first MAX_SECONDS are decoded (polymodal.data.modalities.audio).
MAX_SECONDS = 600
# float32 is what every tensor ends up as: beyond it a value becomes inf after the cast.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def npy_header(f: BinaryIO, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) a ``.npy`` stream declares, read from its header only; the stream is left after it."""
    try:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):  # 3.0 only differs for non-ASCII field names in structured dtypes
            raise ValueError(f"format version {version[0]}.{version[1]}")
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    except NPY_ERRORS as exc:
        detail = " ".join(str(exc).split())
        raise DataError(f"{name} is not a readable .npy array ({detail}); save it with numpy.save") from None
    return tuple(shape), dtype


def check_elements(name: str, shape: tuple[int, ...], limit: int, kind: str) -> None:
    """Refuse a declared shape of more than ``limit`` elements before anything is allocated for it."""
    n = math.prod(int(s) for s in shape)
    if n > limit:
        raise DataError(
            f"{name} has shape {tuple(shape)} ({n:,} elements), over polymodal's limit of {limit:,} for {kind}; "
            "downsample or split it"
        )


def load_npy(source: Path | bytes, name: str, limit: int, kind: str) -> np.ndarray:
    """A numeric ``.npy`` array (a path or uploaded bytes) whose header passed the dtype and element checks."""
    with open(source, "rb") if isinstance(source, Path) else io.BytesIO(source) as f:
        shape, dtype = npy_header(f, name)
        if dtype.hasobject or dtype.kind not in "biuf":
            raise DataError(f"{name} holds {dtype} values, not numbers; save a numeric array (no objects or strings)")
        check_elements(name, shape, limit, kind)
        f.seek(0)
        try:
            return np.load(f, allow_pickle=False)
        except NPY_ERRORS as exc:
            detail = " ".join(str(exc).split())
            raise DataError(f"cannot read array {name}: {detail}; it may be truncated, save it again") from None


def list_shape(value: Any) -> tuple[int, ...]:
    """The shape a nested list declares through its first elements (ragged lists are numpy's to refuse)."""
    shape = []
    while isinstance(value, (list, tuple)):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return tuple(shape)


def element_shape(value: Any) -> tuple[int, ...]:
    """The shape of one row of a cell, for an element count before any copy: numpy's when it can tell (an array
    or a regular list), else what the nested lists declare through their first elements (a ragged row)."""
    try:
        return tuple(np.shape(value))
    except (ValueError, TypeError, AttributeError):
        return list_shape(value)


def check_finite(arr: np.ndarray, name: str, fix: str) -> None:
    """Refuse NaN, ±inf and values that would overflow float32 (such as ±1e308), naming the first one."""
    if arr.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(arr) | (np.abs(arr) > FLOAT32_MAX)
    if bad.any():
        where = np.unravel_index(int(np.flatnonzero(bad)[0]), arr.shape)
        raise DataError(
            f"{name} holds {float(np.real(arr[where])):g} at index {list(map(int, where))}, not a finite number; {fix}"
        )
