"""Reading every row before training, and what the splits lack: the screening pass (``data.on_error``), the
first pass's progress lines, the warning for classes absent from val/test and the hint for an empty split."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

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


def screen(ds: Any, split: str, on_error: str) -> tuple[Any, list[dict[str, Any]]]:
    """Preprocess every row of ``ds`` (an ExampleDataset; not imported, which would make an import cycle) now:
    fail fast on the first bad one, or drop bad rows and record them."""
    bad: list[dict[str, Any]] = []
    rows = ds.table_rows if ds.table_rows is not None else np.arange(len(ds))
    failed = []
    for i in range(len(ds)):
        try:
            ds.preprocess(i)
        except DataError as exc:
            where = f"{split} row {i}" if ds.table_rows is None else f"table row {rows[i]} ({split} split)"
            if on_error == "raise":
                raise DataError(f"{where}: {exc} (or set data.on_error: skip to drop such rows)") from None
            failed.append(i)
            bad.append({"split": split, "row": int(rows[i]), "error": str(exc)})
    if not bad:
        return ds, bad
    log.warning("skipped %d bad %s rows, e.g. %s", len(bad), split, bad[0]["error"])
    keep = np.setdiff1d(np.arange(len(ds)), failed)
    return ds.subset(keep), bad
