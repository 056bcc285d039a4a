"""The run directory: one folder per training run, the same layout for every kind of run.

```
RUN/
  meta.json            {"schema": 2, "kind": "supervised", ...}: what was trained on what, and provenance
  recipe.yaml          the resolved recipe (every default filled in); `polymodal train --resume` reads it
  metrics.jsonl        one JSON object per finished epoch, appended and flushed line by line
  metrics.json         the final record (held-out metrics, best epoch, timings)
  weights.safetensors  the kept weights (best by the monitored metric, or the latest)
  checkpoints/         resumable checkpoints (see polymodal.training.checkpoint)
  ...                  a kind's own files (transforms.json, tokenizer.json, vocab.json, samples/)
```

:class:`RunDir` is the one place that knows these names. Reading a folder that is not a run, a meta.json that is
torn, not an object, wrongly typed or from a newer schema, is one :class:`CheckpointError` naming the file and
what to do. Runs written before meta.json had a schema (polymodal 0.1 on main up to this layout) still load:
their kind is read from the files they have.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import yaml

from polymodal.errors import CheckpointError
from polymodal.storage import (
    append_line,
    atomic_write_json,
    atomic_write_text,
    make_dir,
    read_json,
    read_json_lines,
)

SCHEMA = 2  # 1: meta.json without "schema" (kind only for lm, gan and pretrain runs); 2: schema and kind always
FINISHED = "run directory (`polymodal train ... --run-dir RUN` writes one)"


def environment(data_hash: str | None = None) -> dict[str, Any]:
    """Package versions, git state and machine, saved with every run for reproducibility; ``data_hash`` is a
    content hash of the run's data table (see :func:`polymodal.data.table.Table.content_hash`)."""
    versions = {}
    for pkg in ("polymodal", "torch", "numpy", "pillow", "soundfile", "safetensors", "pandas", "pydantic"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    git: dict[str, Any] = {}
    try:
        here = Path(__file__).resolve().parent
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, timeout=5)
        if sha.returncode == 0:
            git = {"commit": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        pass
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "git": git or None,
        "torch_threads": torch.get_num_threads(),
    }
    if data_hash is not None:
        env["data_hash"] = data_hash
    return env


def text_hash(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def legacy_kind(meta: dict[str, Any], folder: Path) -> str:
    """The kind of a schema-1 run, from what it wrote: lm, gan and pretrain runs said so; a federated run has a
    ``federated`` record; everything else was a supervised model."""
    if isinstance(meta.get("kind"), str):
        return meta["kind"]
    if (folder / "tokenizer.json").is_file():
        return "lm"
    return "federated" if "federated" in meta else "supervised"


def check_fields(data: dict[str, Any], fields: dict[str, type | tuple[type, ...]], where: Path) -> None:
    """Each key of ``fields`` is in ``data`` with that type, else one CheckpointError naming the file."""
    for key, tp in fields.items():
        if key not in data:
            raise CheckpointError(f"{where} has no '{key}'; the run directory is damaged — restore it or retrain")
        if not isinstance(data[key], tp) or (tp is int and isinstance(data[key], bool)):
            names = "/".join(t.__name__ for t in (tp if isinstance(tp, tuple) else (tp,)))
            raise CheckpointError(
                f"{where}: '{key}' is {type(data[key]).__name__} {data[key]!r}, not {names}; "
                "the run directory is damaged — restore it or retrain"
            )


class RunDir:
    """A run folder: where each file lives, and reading and writing them.

    Args:
        path: The run folder (need not exist yet for a new run).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._meta: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # -- layout ------------------------------------------------------------------------------------------
    @property
    def meta_file(self) -> Path:
        return self.path / "meta.json"

    @property
    def recipe_file(self) -> Path:
        return self.path / "recipe.yaml"

    @property
    def metrics_log(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def record_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def weights(self) -> Path:
        return self.path / "weights.safetensors"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def create(self) -> RunDir:
        make_dir(self.path)
        return self

    def has_checkpoint(self) -> bool:
        return (self.checkpoints / "latest").is_file()

    def is_trained(self) -> bool:
        """True when the run has kept weights (an epoch finished), i.e. starting a new run here would overwrite."""
        return self.weights.is_file()

    def require(self, *names: str, needs: str = "") -> None:
        """Stop with one line when the run lacks any of ``names`` (file names inside the run); ``needs`` says
        what the caller wanted instead (e.g. "`polymodal generate` needs a finished language-model run")."""
        tail = f"; {needs}" if needs else f"; give a finished {FINISHED}"
        if not self.path.is_dir():
            raise CheckpointError(f"{self.path} does not exist or is not a folder{tail}")
        if not self.meta_file.is_file():  # not a run at all: say everything it lacks
            missing = [n for n in ("meta.json", "recipe.yaml", "weights.safetensors") if not (self.path / n).exists()]
            raise CheckpointError(f"{self.path} is not a finished run directory (no {', '.join(missing)}){tail}")
        for name in names:
            if not (self.path / name).exists():
                raise CheckpointError(f"{self.path} has no {name}{tail}")

    # -- meta.json ---------------------------------------------------------------------------------------
    def write_meta(self, kind: str, fields: dict[str, Any], data_hash: str | None = None) -> dict[str, Any]:
        """meta.json: schema and kind first, then the kind's ``fields``, then :func:`environment`."""
        meta = {"schema": SCHEMA, "kind": kind, **fields, **environment(data_hash)}
        atomic_write_json(self.meta_file, meta)
        self._meta = meta
        return meta

    def meta(self) -> dict[str, Any]:
        """meta.json, checked: an object, a known schema, a kind (inferred for schema-1 runs)."""
        if self._meta is not None:
            return self._meta
        self.require()
        meta = read_json(self.meta_file, f" (the meta.json of run {self.path})")
        if not isinstance(meta, dict):
            raise CheckpointError(
                f"{self.meta_file} holds a JSON {type(meta).__name__}, not the object a run writes; "
                "the run directory is damaged — restore it or retrain"
            )
        schema = meta.get("schema", 1)
        if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
            raise CheckpointError(f"{self.meta_file}: 'schema' is {schema!r}, not a version number; restore the file")
        if schema > SCHEMA:
            raise CheckpointError(
                f"{self.meta_file} has schema {schema}, newer than this polymodal reads ({SCHEMA}); "
                "upgrade polymodal (pip install -U polymodal) to load this run"
            )
        if schema == 1:
            meta = {**meta, "schema": 1, "kind": legacy_kind(meta, self.path)}
        check_fields(meta, {"kind": str}, self.meta_file)
        self._meta = meta
        return meta

    @property
    def kind(self) -> str:
        return str(self.meta()["kind"])

    def fields(self, spec: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
        """meta.json after checking it has each key of ``spec`` with that type (a kind's own keys)."""
        meta = self.meta()
        check_fields(meta, spec, self.meta_file)
        return meta

    # -- recipe, record, metrics -------------------------------------------------------------------------
    def write_recipe(self, resolved: dict[str, Any]) -> None:
        atomic_write_text(self.recipe_file, yaml.safe_dump(resolved, sort_keys=False))

    def read_json(self, name: str) -> Any:
        return read_json(self.path / name, f" (in run {self.path})")

    def write_json(self, name: str, value: Any) -> None:
        atomic_write_json(self.path / name, value)

    def record(self) -> dict[str, Any]:
        """metrics.json (the final record); {} when the run has not finished."""
        if not self.record_file.is_file():
            return {}
        record = self.read_json("metrics.json")
        if not isinstance(record, dict):
            raise CheckpointError(f"{self.record_file} is not a JSON object; restore it or retrain the run")
        return record

    def final_metrics(self) -> tuple[str, dict[str, Any]]:
        """(split, metrics) of the final record: the metrics under the key its ``split`` names (``test``, ``val``,
        ``generated``). Records written before they named their split: ``test``, else ``val``, else the record
        itself (a GAN's quality figures were its top-level keys)."""
        record = self.record()
        split = record.get("split") or next((s for s in ("test", "val") if isinstance(record.get(s), dict)), "")
        metrics = record.get(split) if split else record
        return split or "generated", dict(metrics) if isinstance(metrics, dict) else {}

    def write_record(self, record: dict[str, Any]) -> None:
        atomic_write_json(self.record_file, record)

    def append_metrics(self, row: dict[str, Any]) -> None:
        """One epoch's metrics as a line of metrics.jsonl, on disk when this returns."""
        append_line(self.metrics_log, json.dumps(row))

    def history(self) -> list[dict[str, Any]]:
        """metrics.jsonl, one row per finished epoch; a torn last line (a kill while appending) is left out.
        Schema-1 federated runs counted ``round`` where every run now counts ``epoch``."""
        rows = read_json_lines(self.metrics_log)
        return [r if "epoch" in r or "round" not in r else {**r, "epoch": r["round"]} for r in rows]

    def keep_history(self, epochs: int) -> None:
        """Drop metrics lines after epoch ``epochs`` (and torn ones): a resumed run writes each epoch once."""
        if self.metrics_log.exists():
            kept = [r for r in self.history() if isinstance(r.get("epoch"), int) and r["epoch"] <= epochs]
            atomic_write_text(self.metrics_log, "".join(json.dumps(r) + "\n" for r in kept))

    def clear_history(self) -> None:
        self.metrics_log.unlink(missing_ok=True)


def default_run_dir(name: str, root: str | Path = "runs", stamp: str | None = None) -> Path:
    """``runs/<name>-<YYYYmmdd-HHMMSS>``."""
    return Path(root) / f"{name}-{stamp or dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
