"""What each column of a table holds, so a DataFrame can be trained without a recipe.

Per column, from its values: files by extension (and, for paths without one, by their first bytes) — image,
audio, video, or a series saved as ``.npy``/``.csv``; lists and 1-D arrays are series; 2-D uint8 arrays are
images; numbers are numeric features; strings are free text or categories by how many distinct values there
are and how many words they hold. ``column_types`` overrides any guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polymodal.errors import DataError

TYPES = ("image", "audio", "video", "series", "text", "categorical", "numeric", "ignore")
SUFFIXES = {
    "image": (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".svg"),
    "audio": (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"),
    "video": (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"),
    "series": (".npy", ".csv"),
}
# First bytes of files whose names say nothing (b"RIFF" + "WAVE" at 8, PNG, JPEG, GIF, MP4's "ftyp" at 4).
MAGIC = (
    (0, b"\x89PNG", "image"),
    (0, b"\xff\xd8\xff", "image"),
    (0, b"GIF8", "image"),
    (8, b"WAVE", "audio"),
    (0, b"fLaC", "audio"),
    (0, b"OggS", "audio"),
    (4, b"ftyp", "video"),
)
SAMPLE = 200  # rows looked at per column: enough to tell, cheap on a large table
CATEGORY_LIMIT = 50  # at most this many distinct strings (and few words each) make a categorical column


def is_blank(value: Any) -> bool:
    return (
        value is None or (isinstance(value, float) and value != value) or (isinstance(value, str) and not value.strip())
    )


def file_type(value: str, base_dir: Path | None) -> str | None:
    """The modality of a file a cell names (by extension, else by its first bytes), or None if it is not one."""
    path = Path(value)
    for modality, suffixes in SUFFIXES.items():
        if path.suffix.lower() in suffixes:
            return modality
    full = path if path.is_absolute() or base_dir is None else base_dir / path
    if "\n" in value or len(value) > 4096 or not full.is_file():
        return None
    with open(full, "rb") as f:
        head = f.read(16)
    return next((modality for at, magic, modality in MAGIC if head[at : at + len(magic)] == magic), None)


def column_type(values: pd.Series, base_dir: Path | None) -> str:
    """The guessed type of one column (see the module doc); raises DataError when nothing fits."""
    sample = [v for v in values.tolist() if not is_blank(v)][:SAMPLE]
    if not sample:
        raise DataError(f"column '{values.name}' is empty; drop it or give it a type in column_types")
    if all(isinstance(v, (list, tuple)) or (isinstance(v, np.ndarray) and v.ndim == 1) for v in sample):
        return "series"
    if all(isinstance(v, np.ndarray) and v.ndim in (2, 3) and v.dtype == np.uint8 for v in sample):
        return "image"
    if all(isinstance(v, np.ndarray) and v.ndim == 2 and np.issubdtype(v.dtype, np.number) for v in sample):
        return "series"  # (T, C) steps of channels
    if all(isinstance(v, (bool, np.bool_)) for v in sample):
        return "categorical"
    if all(isinstance(v, (int, float, np.integer, np.floating)) for v in sample):
        return "numeric"
    if all(isinstance(v, str) for v in sample):
        files = {file_type(v, base_dir) for v in sample[:20]}
        if len(files) == 1 and None not in files:
            return str(files.pop())
        distinct = values.dropna().astype(str).nunique()
        words = np.mean([len(v.split()) for v in sample])
        return "categorical" if distinct <= CATEGORY_LIMIT and words <= 3 else "text"
    kinds = sorted({type(v).__name__ for v in sample})
    raise DataError(
        f"column '{values.name}' mixes {', '.join(kinds)} values; give its type in column_types "
        f"(one of {', '.join(TYPES)})"
    )


def infer_types(
    frame: pd.DataFrame, label: str, base_dir: Path | None = None, column_types: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``{column: type}`` for every column but the label; ``column_types`` overrides (``ignore`` drops one)."""
    given = dict(column_types or {})
    for column, kind in given.items():
        if column not in frame.columns:
            raise DataError(
                f"column_types names '{column}', which the table does not have ({', '.join(frame.columns)})"
            )
        if kind not in TYPES:
            raise DataError(f"column_types: '{column}' has type '{kind}'; use one of {', '.join(TYPES)}")
    return {c: given.get(c) or column_type(frame[c], base_dir) for c in frame.columns if c != label}


def problem_type(labels: pd.Series) -> str:
    """``classification`` for strings, booleans and integers with few distinct values; else ``regression``."""
    values = labels.dropna()
    if values.empty:
        raise DataError(f"label column '{labels.name}' is empty; fill it or choose another label")
    if pd.api.types.is_float_dtype(values) and not np.all(np.mod(values, 1) == 0):
        return "regression"
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return "classification" if values.nunique() <= CATEGORY_LIMIT else "regression"
    return "classification"
