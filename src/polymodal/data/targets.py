"""Targets from the label column(s), in the form the recipe's head needs.

- ``class`` (classification head): one class index per row, classes sorted (numbers numerically).
- ``multilabel``: a multi-hot vector per row; a cell is a list of labels or one string joined by
  ``data.label_separator``; labels seen fewer than ``data.min_label_count`` times in training are dropped.
- ``multitask``: one value per task column, float: a class index for classification tasks, the value
  standardised with the training mean/std for regression tasks.
- ``text`` (caption head): the label text as character ids followed by an end token, padded with -1;
  the characters are those of the training labels (ids 0 and 1 are the begin and end tokens).

``info`` (JSON-able, saved in the run's meta.json) is everything needed to decode predictions.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from polymodal.data.table import column_values
from polymodal.errors import DataError


def class_names(values: Any) -> list[str]:
    """Sorted class names; numbers sort numerically ("2" before "10")."""
    names = sorted({str(v) for v in values})
    try:
        return sorted(names, key=float)
    except ValueError:
        return names


def split_labels(cell: Any, separator: str) -> list[str]:
    if isinstance(cell, (list, tuple, set, np.ndarray)):
        return [str(v).strip() for v in cell if str(v).strip()]
    if cell is None or (isinstance(cell, float) and cell != cell):
        return []
    return [v.strip() for v in str(cell).split(separator) if v.strip()]


def encode_targets(
    frame: pd.DataFrame,
    label: str,
    kind: str,
    train_rows: np.ndarray,
    separator: str = "|",
    min_count: int = 1,
    tasks: list[Any] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """``(targets, info)`` for every row of ``frame``; statistics come from ``train_rows`` only."""
    if kind == "class":
        classes = class_names(frame[label])
        values = column_values(frame[label])
        seen = sorted({str(values[i]) for i in train_rows})
        if len(seen) < 2:
            raise DataError(
                f"label column '{label}' has {len(seen)} class(es) in the training split "
                f"({', '.join(seen) or 'none'}); a classifier needs at least two: "
                "check data.label, the split column or the table"
            )
        index = {c: i for i, c in enumerate(classes)}
        return np.array([index[str(v)] for v in frame[label]], dtype=np.int64), {"kind": kind, "classes": classes}
    if kind == "multilabel":
        sets = [split_labels(c, separator) for c in frame[label]]
        counts = Counter(lab for i in train_rows for lab in set(sets[i]))
        classes = sorted(lab for lab, n in counts.items() if n >= min_count)
        if len(classes) < 2:
            raise DataError(
                f"multi-label column '{label}' has {len(classes)} labels seen ≥ {min_count} times in training; "
                f"check data.label_separator ('{separator}') or lower data.min_label_count"
            )
        index = {c: i for i, c in enumerate(classes)}
        y = np.zeros((len(frame), len(classes)), dtype=np.float32)
        for r, labs in enumerate(sets):
            for lab in labs:
                if lab in index:
                    y[r, index[lab]] = 1.0
        return y, {"kind": kind, "classes": classes}
    if kind == "multitask":
        cols, infos = [], []
        for task in tasks or []:
            if task.column not in frame.columns:
                raise DataError(f"task column '{task.column}' is not in the data (columns: {', '.join(frame.columns)})")
            values = frame[task.column]
            if values.isna().any():
                raise DataError(f"task column '{task.column}' has empty cells; fill or drop those rows")
            if task.kind == "classification":
                t, sub = encode_targets(frame, task.column, "class", train_rows)
                cols.append(t.astype(np.float32))
                infos.append({"column": task.column, "kind": task.kind, "classes": sub["classes"]})
            else:
                try:
                    v = values.to_numpy(dtype=np.float64)
                except (TypeError, ValueError):
                    raise DataError(f"regression task '{task.column}' has non-numeric values") from None
                mean, std = float(v[train_rows].mean()), float(v[train_rows].std()) or 1.0
                cols.append(((v - mean) / std).astype(np.float32))
                infos.append({"column": task.column, "kind": task.kind, "mean": mean, "std": std})
        return np.stack(cols, axis=1), {"kind": kind, "tasks": infos}
    if kind == "text":
        texts = ["" if v is None or (isinstance(v, float) and v != v) else str(v) for v in frame[label]]
        chars = sorted({c for i in train_rows for c in texts[i]})
        index = {c: i + 2 for i, c in enumerate(chars)}
        longest = max(len(texts[i]) for i in train_rows)
        y = np.full((len(frame), longest + 1), -1, dtype=np.int64)
        for r, text in enumerate(texts):
            ids = [index[c] for c in text[:longest] if c in index] + [EOS]
            y[r, : len(ids)] = ids
        return y, {"kind": kind, "chars": chars, "max_length": longest + 1}
    raise ValueError(f"unknown target kind {kind}")


BOS, EOS = 0, 1


def encode_known(frame: pd.DataFrame, label: str, info: dict[str, Any], separator: str = "|") -> np.ndarray:
    """Targets for every row of ``frame`` in a finished run's encoding ``info`` (its classes, label set,
    regression mean/std or characters), e.g. to evaluate the run on a table it never saw.

    A class the run does not know is an error (the model cannot predict it); a multi-label label or a caption
    character it does not know is dropped, as rare labels and unseen characters were in training.
    """
    kind = info["kind"]
    if kind in ("class", "multilabel") and label not in frame.columns:
        raise DataError(f"label column '{label}' is not in the data (columns: {', '.join(map(str, frame.columns))})")
    if kind == "class":
        return class_indices(frame[label], info["classes"], label)
    if kind == "multilabel":
        index = {c: i for i, c in enumerate(info["classes"])}
        y = np.zeros((len(frame), len(index)), dtype=np.float32)
        for r, cell in enumerate(frame[label]):
            for lab in split_labels(cell, separator):
                if lab in index:
                    y[r, index[lab]] = 1.0
        return y
    if kind == "multitask":
        cols = []
        for task in info["tasks"]:
            column = task["column"]
            if column not in frame.columns:
                raise DataError(f"task column '{column}' is not in the data (columns: {', '.join(frame.columns)})")
            if frame[column].isna().any():
                raise DataError(f"task column '{column}' has empty cells; fill or drop those rows")
            if task["kind"] == "classification":
                cols.append(class_indices(frame[column], task["classes"], column).astype(np.float32))
                continue
            try:
                v = frame[column].to_numpy(dtype=np.float64)
            except (TypeError, ValueError):
                raise DataError(f"regression task '{column}' has non-numeric values") from None
            cols.append(((v - task["mean"]) / task["std"]).astype(np.float32))
        return np.stack(cols, axis=1)
    if kind == "text":
        index = {c: i + 2 for i, c in enumerate(info["chars"])}
        longest = info["max_length"] - 1
        y = np.full((len(frame), longest + 1), -1, dtype=np.int64)
        for r, v in enumerate(frame[label]):
            text = "" if v is None or (isinstance(v, float) and v != v) else str(v)
            ids = [index[c] for c in text if c in index][:longest] + [EOS]
            y[r, : len(ids)] = ids
        return y
    raise ValueError(f"unknown target kind {kind}")


def class_indices(values: pd.Series, classes: list[str], column: str) -> np.ndarray:
    if values.isna().any():
        bad = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise DataError(f"label column '{column}' is empty in row {bad}; fill or drop unlabelled rows")
    index = {c: i for i, c in enumerate(classes)}
    names = [str(v) for v in values]
    unknown = sorted({n for n in names if n not in index})
    if unknown:
        shown = ", ".join(unknown[:5]) + (" …" if len(unknown) > 5 else "")
        raise DataError(
            f"column '{column}' has {len(unknown)} class(es) the run was not trained on ({shown}); "
            f"keep only rows labelled {', '.join(classes[:10])}{' …' if len(classes) > 10 else ''}"
        )
    return np.array([index[n] for n in names], dtype=np.int64)


def num_outputs(info: dict[str, Any]) -> int:
    """Width of the model's output for these targets."""
    if info["kind"] == "multitask":
        return sum(task_size(t) for t in info["tasks"])
    if info["kind"] == "text":
        return len(info["chars"]) + 2
    return len(info["classes"])


def task_size(task: dict[str, Any]) -> int:
    return len(task["classes"]) if task["kind"] == "classification" else 1
