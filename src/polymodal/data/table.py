"""Manifest tables (CSV, Parquet, JSONL) and the deterministic stratified split."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polymodal.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def column_values(series: pd.Series) -> Any:
    """A column's cells, indexable by position, each as ``series.iat[i]`` gives it, without its per-call cost
    (~40 us: 0.2 s for a 3,000-row table's file column). Numpy-backed and string columns convert in one call;
    other extension types (datetimes, nullable integers) keep their own array, whose items are ``iat``'s."""
    dtype = series.dtype
    if (isinstance(dtype, np.dtype) and dtype.kind in "biufO") or isinstance(dtype, pd.StringDtype):
        return series.to_numpy()
    return series.array


@dataclass
class Table:
    """Examples as a data frame; string cells of file modalities resolve against ``base_dir``.

    Args:
        frame: One row per example; columns hold values, arrays or file paths.
        label: Name of the target column.
        base_dir: Folder that relative file paths are relative to (the manifest's folder).
        split: Optional column holding ``train``/``val``/``test`` per row (an official split).
        group: Optional column whose rows must share a split (the same drawing, speaker or patient in several
            rows): a random row split would put copies of one example in both train and test.
        source: Where the rows came from, for logs and the run record.
        pinned: Dataset options the loader resolved from what this machine has (avdigits ``audio: auto`` →
            ``mfcc``); a run saves them in its recipe so evaluation elsewhere loads the same data.
    """

    frame: pd.DataFrame
    label: str
    base_dir: Path | None = None
    split: str | None = None
    source: str = ""
    group: str | None = None
    pinned: dict[str, Any] = field(default_factory=dict)

    def require(self, columns: list[str], where: str) -> None:
        missing = [c for c in columns if c not in self.frame.columns]
        if missing:
            raise DataError(
                f"{where} has no column {', '.join(repr(c) for c in missing)} "
                f"(columns: {', '.join(map(str, self.frame.columns))}); fix the recipe's column names"
            )

    def content_hash(self) -> str:
        """``sha256:...`` of the table's contents (column names and every cell, arrays by their bytes), so a run
        records which version of its data it saw; files a cell names are not read (their paths are hashed)."""
        h = hashlib.sha256()
        for name in self.frame.columns:
            h.update(f"\x00{name}\x00".encode())
            for cell in self.frame[name].tolist():
                if isinstance(cell, np.ndarray):
                    h.update(f"{cell.dtype}{cell.shape}".encode() + np.ascontiguousarray(cell).tobytes())
                else:
                    h.update(repr(cell).encode() + b"\x01")
        return "sha256:" + h.hexdigest()


def not_utf8_lines(path: Path, limit: int = 5) -> list[int]:
    """1-based numbers of the first ``limit`` lines of ``path`` that are not valid UTF-8."""
    bad = []
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                bad.append(number)
                if len(bad) == limit:
                    break
    return bad


def read_delimited(path: Path, sep: str) -> pd.DataFrame:
    """A CSV/TSV; cells with bytes that are not UTF-8 are read with U+FFFD in their place and a warning names
    the lines (one bad text cell should not refuse the whole table)."""
    read = lambda errors: pd.read_csv(  # noqa: E731
        path, sep=sep, keep_default_na=False, na_values=[""], encoding="utf-8", encoding_errors=errors
    )
    try:
        return read("strict")
    except UnicodeDecodeError:
        lines = not_utf8_lines(path)
        log.warning(
            "table %s: line(s) %s hold bytes that are not UTF-8, read as U+FFFD (�); re-save the file as UTF-8 "
            "to keep those characters",
            path,
            ", ".join(map(str, lines)),
        )
        return read("replace")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV, Parquet or JSONL manifest; errors say which file and what is wrong."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"table not found: {p}; give a CSV, Parquet or JSONL file path")
    suffix = p.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            return read_delimited(p, "\t" if suffix == ".tsv" else ",")
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(p)
        if suffix in (".jsonl", ".ndjson"):
            return pd.read_json(p, lines=True)
    except ImportError as exc:
        raise DataError(f"reading {p} needs an extra package: {exc}; run pip install 'polymodal[parquet]'") from None
    except (ValueError, pd.errors.ParserError, OSError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read table {p}: {first}") from None
    raise DataError(f"table {p}: unsupported extension '{suffix}'; use .csv, .tsv, .parquet or .jsonl")


def stratified_split(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int, groups: np.ndarray | None = None
) -> np.ndarray:
    """Assign each row to train/val/test, keeping class proportions; same inputs give the same split.

    Classes are visited in sorted order and shuffled with one seeded generator, so the result depends only
    on the label sequence, the fractions and the seed. With ``groups``, whole groups are assigned (each
    stratified by its first row's label) and every row follows its group.
    """
    if groups is not None:
        _, first, inverse = np.unique(np.asarray(groups).astype(str), return_index=True, return_inverse=True)
        return stratified_split(np.asarray(labels)[first], val_fraction, test_fraction, seed)[inverse]
    labels = np.asarray(labels)
    out = np.full(len(labels), "train", dtype=object)
    rng = np.random.default_rng(seed)
    for cls in sorted(set(labels.tolist()), key=str):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(len(idx) * test_fraction))
        n_val = int(round(len(idx) * val_fraction))
        out[idx[:n_test]] = "test"
        out[idx[n_test : n_test + n_val]] = "val"
    return out


def label_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a stratified ``fraction`` of ``labels``: per class round(n·fraction) rows, at least
    one, drawn with a seeded generator (classes visited in sorted order, so the subset is reproducible)."""
    labels = np.asarray(labels).astype(str)
    rng = np.random.default_rng([seed, 10_007])
    keep = []
    for cls in sorted(set(labels.tolist())):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        keep.append(idx[: max(1, int(round(len(idx) * fraction)))])
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def assign_splits(
    table: Table, val_fraction: float, test_fraction: float, seed: int, stratify: bool = True
) -> np.ndarray:
    """Use the table's split column when it has one (carving val out of train if absent), else stratify.

    ``stratify=False`` draws the split without looking at the label: for targets that are not a class
    (caption text, label sets) nearly every value is unique, and per-value stratification would keep every
    once-seen value in training and fill val/test with the few frequent ones.
    """
    frame = table.frame
    labels = frame[table.label].astype(str).to_numpy() if stratify else np.zeros(len(frame), dtype=object)
    groups = None if table.group is None else table.frame[table.group].to_numpy()
    if table.split is None:
        return stratified_split(labels, val_fraction, test_fraction, seed, groups)
    split = table.frame[table.split].astype(str).str.lower().to_numpy().astype(object)
    bad = sorted(set(split.tolist()) - set(SPLITS))
    if bad:
        raise DataError(f"split column '{table.split}' has values {bad}; allowed: train, val, test")
    if "val" not in set(split.tolist()):
        train = np.flatnonzero(split == "train")
        frac = val_fraction / max(1e-9, 1.0 - test_fraction)
        sub = stratified_split(labels[train], frac, 0.0, seed, None if groups is None else groups[train])
        split[train[sub == "val"]] = "val"
    return split
