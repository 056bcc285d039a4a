"""Predictions for every row of a table, streamed: the table is read and written in chunks of rows, so memory
stays bounded by one chunk whatever the table's size."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from polymodal.errors import DataError, PolymodalError
from polymodal.kinds.supervised.predictor import RunPredictor

OUTPUTS = (".csv", ".tsv", ".jsonl", ".parquet")
CHUNK = 256


def chunks(path: Path, size: int) -> Iterator[pd.DataFrame]:
    """The table's rows, ``size`` at a time (CSV/TSV and JSONL read lazily, Parquet by row groups)."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataError(f"table not found: {path}; give a CSV, TSV, Parquet or JSONL file")
    if suffix in (".csv", ".tsv"):
        yield from pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", chunksize=size, keep_default_na=False,
                               na_values=[""])  # fmt: skip
    elif suffix in (".jsonl", ".json"):
        yield from pd.read_json(path, lines=True, chunksize=size)
    elif suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=size):
            yield batch.to_pandas()
    else:
        raise DataError(f"{path}: unknown table format '{suffix}'; use .csv, .tsv, .parquet or .jsonl")


class Writer:
    """Appends chunks of prediction rows to a CSV/TSV/JSONL/Parquet file (written under a temporary name and
    renamed when complete, so a crash never leaves a file that looks finished)."""

    def __init__(self, path: Path) -> None:
        if path.suffix.lower() not in OUTPUTS:
            raise DataError(f"--out {path}: write predictions as {', '.join(OUTPUTS)}")
        self.path, self.tmp = path, path.with_name(f".{path.name}.part")
        self.rows = 0
        self._parquet: Any = None

    def write(self, frame: pd.DataFrame) -> None:
        suffix = self.path.suffix.lower()
        if suffix in (".csv", ".tsv"):
            frame.to_csv(self.tmp, mode="a", header=self.rows == 0, index=False, sep="\t" if suffix == ".tsv" else ",")
        elif suffix == ".jsonl":
            with open(self.tmp, "a", encoding="utf-8") as f:
                for row in frame.to_dict("records"):
                    f.write(json.dumps(row) + "\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.tmp, table.schema)
            self._parquet.write_table(table)
        self.rows += len(frame)

    def close(self) -> Path:
        if self._parquet is not None:
            self._parquet.close()
        if self.rows == 0:
            self.tmp.write_text("", encoding="utf-8")
        self.tmp.replace(self.path)
        return self.path


def values_of(predictor: RunPredictor, row: dict[str, Any], base: Path) -> dict[str, Any]:
    """One table row as the run's inputs (a multi-column input gets its columns; relative file paths become
    absolute against the table's folder)."""
    out = {}
    for spec in predictor.recipe.inputs:
        if spec.columns:
            out[spec.name] = {c: row.get(c) for c in spec.columns}
            continue
        value = row.get(spec.column)
        files = isinstance(value, str) and value.strip() and predictor.transforms[spec.name].files
        out[spec.name] = str(base / value) if files and not Path(value).is_absolute() else value
    return out


def flatten(result: dict[str, Any]) -> dict[str, Any]:
    """A prediction as flat columns: ``label`` and ``p_<class>``, ``labels``, ``text``, or per task
    ``<task>_label``, ``<task>_p_<class>``, ``<task>_value``."""
    out: dict[str, Any] = {}
    for key, value in result.items():
        if key == "missing":
            out["missing"] = ",".join(value)
        elif key == "probabilities":
            out.update({f"p_{c}": p for c, p in value.items()})
        elif key == "labels":
            out["labels"] = "|".join(value)
        elif isinstance(value, dict):  # a multi-task head: one block per task
            out.update({f"{key}_{k}": v for k, v in flatten(value).items()})
        else:
            out[key] = value
    return out


def predict_table(
    predictor: RunPredictor,
    table: Path,
    out: Path,
    on_error: str = "raise",
    chunk: int = CHUNK,
    callback: Callable[..., None] | None = None,
) -> tuple[Path, list[dict[str, Any]]]:
    """Predict every row of ``table`` into ``out``; returns (the file, the skipped rows with their errors).

    A row whose inputs cannot be read stops the run with one line naming the row (``on_error: raise``), or is
    left out of ``out`` and reported (``skip``)."""
    if on_error not in ("raise", "skip"):
        raise DataError(f"on_error '{on_error}'; use raise or skip")
    missing = sorted(
        {c for s in predictor.recipe.inputs for c in (s.columns or [s.column])} - set(next(chunks(table, 1)).columns)
    )
    if missing:
        raise DataError(f"{table} has no column {', '.join(map(repr, missing))} that the run's inputs read")
    writer, skipped, start = Writer(out), [], 0
    base = table.resolve().parent
    for frame in chunks(table, chunk):
        prepared, rows = [], []
        for i, row in enumerate(frame.to_dict("records"), start=start):
            try:
                prepared.append(predictor.prepare_values(values_of(predictor, row, base), empty_ok=True))
                rows.append(i)
            except PolymodalError as exc:
                if on_error == "raise":
                    raise DataError(f"{table.name} row {i}: {exc} (or pass --on-error skip)") from None
                skipped.append({"row": i, "error": str(exc)})
        if prepared:
            results = predictor.run(prepared)
            writer.write(pd.DataFrame([{"row": i, **flatten(r)} for i, r in zip(rows, results, strict=True)]))
        start += len(frame)
        if callback:
            callback("rows", done=start, written=writer.rows, skipped=len(skipped))
    return writer.close(), skipped
