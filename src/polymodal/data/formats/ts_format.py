"""The sktime/aeon ``.ts`` time-series format.

Lines starting with ``#`` are comments, ``@`` lines form the header, and after ``@data`` each line is
one case: each dimension's comma-separated values, dimensions separated by ``:``, the class label last.
Dimensions may differ in length between cases; ``?`` or ``NaN`` marks a missing value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from polymodal.errors import DataError


def read_ts(path: str | Path) -> tuple[list[np.ndarray], list[str], dict[str, str]]:
    """Read a labelled ``.ts`` file.

    Returns:
        ``(series, labels, header)``: one (T, C) float32 array per case, its class label, and the ``@`` keys.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f".ts file not found: {p}")
    header: dict[str, str] = {}
    series: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    dims: int | None = None
    with open(p, encoding="utf-8", errors="replace") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                if not line.startswith("@"):
                    raise DataError(f"{p}:{lineno}: expected an @ header line or @data, got {line[:40]!r}")
                key, _, value = line[1:].partition(" ")
                if key.lower() == "data":
                    in_data = True
                else:
                    header[key.lower()] = value.strip()
                continue
            *parts, label = line.split(":")
            if not parts:
                raise DataError(f"{p}:{lineno}: a case needs values and a label separated by ':'")
            if dims is None:
                dims = len(parts)
            elif len(parts) != dims:
                raise DataError(f"{p}:{lineno}: {len(parts)} dimensions, but earlier cases have {dims}")
            try:
                channels = [np.array([np.nan if v.strip() == "?" else float(v) for v in d.split(",")]) for d in parts]
            except ValueError as exc:
                raise DataError(f"{p}:{lineno}: not a number ({exc}); fix or remove this case") from None
            length = max(len(c) for c in channels)
            # Dimensions of one case may end at different times: pad the short ones with NaN (missing).
            case = np.full((length, dims), np.nan, dtype=np.float32)
            for j, c in enumerate(channels):
                case[: len(c), j] = c
            series.append(case)
            labels.append(label.strip())
    if not in_data:
        raise DataError(f"{p}: no @data line; is this a .ts file?")
    if not series:
        raise DataError(f"{p}: no cases after @data")
    return series, labels, header
