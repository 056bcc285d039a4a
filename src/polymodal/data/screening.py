"""Reading every row before training, and what the splits lack: the screening pass (``data.on_error``), the
first pass's progress lines, the warning for classes absent from val/test and the hint for an empty split."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from polymodal.data.prepare import one_thread
from polymodal.data.table import Table
from polymodal.errors import DataError

log = logging.getLogger(__name__)


def log_progress(done: int, total: int, seconds: float) -> None:
    rate = done / max(seconds, 1e-9)
    log.info("preparing files: %d/%d (%.0f files/s, ETA %.0f s)", done, total, rate, (total - done) / max(rate, 1e-9))


def warn_missing_classes(targets: np.ndarray, rows: dict[str, np.ndarray], classes: list[str], table: Table) -> None:
    """Warn when a class of the training split has no row in val or test: that split's metrics cannot tell how
    the model does on it (and macro averages are over the classes present)."""
    for name in ("val", "test"):
        absent = sorted(set(range(len(classes))) - set(np.asarray(targets)[rows[name]].tolist()))
        if absent:
            shown = ", ".join(str(classes[k]) for k in absent[:5]) + (" ..." if len(absent) > 5 else "")
            fix = f"give them '{name}' rows in column '{table.split}'" if table.split else f"raise data.{name}_fraction"
            log.warning(
                "the %s split has no row of %d of the %d classes (%s); its metrics say nothing about them: add "
                "rows or %s",
                name,
                len(absent),
                len(classes),
                shown,
                fix,
            )


def empty_split_hint(name: str, table: Table) -> str:
    """What to change when split ``name`` got no rows."""
    if table.split:
        return f"give some rows '{name}' in column '{table.split}'" + (
            " (val rows are otherwise carved from train by data.val_fraction)" if name == "val" else ""
        )
    if name == "train":
        return "add rows, or lower data.val_fraction / data.test_fraction"
    return f"add rows or raise data.{name}_fraction"


def warn_flat(flat: dict[str, list[int]], split: str, total: int) -> None:
    """Warn when at least 1 % of a split's rows (and 3) hold an input that is one constant value — a blank image,
    a silent recording: failed renders or recordings, which carry nothing and, if they share a label, teach a
    shortcut."""
    for name, rows in flat.items():
        if len(rows) >= max(3, 0.01 * total):
            log.warning(
                "%d of %d %s rows have a constant '%s' (one flat colour or silence; e.g. table row %d): if these "
                "are failed files, drop those rows or blank the cells so the input counts as missing",
                len(rows),
                total,
                split,
                name,
                rows[0],
            )


def is_flat(x: Any) -> bool:
    """A float tensor of at least two dimensions holding one constant value (a blank image, a silence)."""
    return x is not None and x.is_floating_point() and x.dim() >= 2 and x.numel() > 1 and bool(x.min() == x.max())


def screen(ds: Any, split: str, on_error: str) -> tuple[Any, list[dict[str, Any]]]:
    """Preprocess every row of ``ds`` (an ExampleDataset; not imported, which would make an import cycle) now:
    fail fast on the first bad one, or drop bad rows and record them."""
    bad: list[dict[str, Any]] = []
    rows = ds.table_rows if ds.table_rows is not None else np.arange(len(ds))
    failed = []
    flat: dict[str, list[int]] = {}  # per input: rows whose tensor is one constant value
    with one_thread():
        for i in range(len(ds)):
            try:
                for k, x in ds.preprocess(i).items():
                    if is_flat(x):
                        flat.setdefault(k, []).append(int(rows[i]))
            except DataError as exc:
                where = f"{split} row {i}" if ds.table_rows is None else f"table row {rows[i]} ({split} split)"
                if on_error == "raise":
                    raise DataError(f"{where}: {exc} (or set data.on_error: skip to drop such rows)") from None
                failed.append(i)
                bad.append({"split": split, "row": int(rows[i]), "error": str(exc)})
    warn_flat(flat, split, len(ds))
    if not bad:
        return ds, bad
    log.warning("skipped %d bad %s rows, e.g. %s", len(bad), split, bad[0]["error"])
    keep = np.setdiff1d(np.arange(len(ds)), failed)
    return ds.subset(keep), bad
