"""``Predictor``: a model from a table in three lines, with no recipe to write.

```python
predictor = polymodal.Predictor(label="category").fit(train_df)
predictor.predict(test_df)            # a Series of labels (values for regression)
predictor.evaluate(test_df)           # accuracy, macro F1, confusion matrix, ...
```

Under it is an ordinary run: ``fit`` infers each column's type, builds a recipe from a preset, writes the table
(file paths made absolute) and the recipe into the run directory and trains it with :func:`polymodal.api.train`,
so ``polymodal train RUN/recipe.yaml`` reproduces it and every command works on the run.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polymodal import api
from polymodal.data.infer import infer_types, problem_type
from polymodal.data.table import Table, assign_splits, read_table
from polymodal.errors import CheckpointError, DataError, suggest
from polymodal.kinds.supervised.auto import recipe_for_table
from polymodal.runs import RunDir

FILE_TYPES = ("image", "audio", "video", "series")
SPLIT = "__split__"  # the column that carries an explicit split when tuning_data is given
SIDECAR = "predictor.json"  # label, preset, problem type and column types of a run made by Predictor.fit
BATCH = 256  # rows per forward in predict


def read_data(data: pd.DataFrame | str | Path) -> tuple[pd.DataFrame, Path]:
    """(the rows, the folder their relative file paths are relative to)."""
    if isinstance(data, pd.DataFrame):
        return data.copy(), Path.cwd()
    if isinstance(data, (str, Path)):
        path = Path(data)
        return read_table(path), path.resolve().parent
    raise DataError(f"give a pandas DataFrame or a CSV/TSV/Parquet/JSONL path, not a {type(data).__name__}")


def absolute(frame: pd.DataFrame, types: Mapping[str, str], base: Path) -> pd.DataFrame:
    """The frame with relative file paths in file columns made absolute against ``base``."""
    out = frame.copy()
    for column, kind in types.items():
        if kind in FILE_TYPES and column in out:
            out[column] = [
                str(base / v) if isinstance(v, str) and v.strip() and not Path(v).is_absolute() else v
                for v in out[column]
            ]
    return out


def write_table(frame: pd.DataFrame, folder: Path) -> Path:
    """The rows as CSV (plain values) or Parquet (list cells); a cell that neither holds is one DataError."""
    listy = frame.map(lambda v: isinstance(v, (list, tuple, np.ndarray))).to_numpy().any() if len(frame) else False
    if not listy:
        path = folder / "table.csv"
        frame.to_csv(path, index=False)
        return path
    cells = frame.map(lambda v: v.tolist() if isinstance(v, np.ndarray) else v)  # Parquet stores lists, not arrays
    try:
        path = folder / "table.parquet"
        cells.to_parquet(path, index=False)
    except ImportError:
        raise DataError("a table with list or array cells is saved as Parquet: pip install pyarrow") from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise DataError(f"the table cannot be saved ({exc}); give images as file paths, series as lists") from None
    return path


class Predictor:
    """A multimodal model fitted on a table: AutoGluon's ``MultiModalPredictor`` way, polymodal's runs underneath.

    Args:
        label: The column to predict.
        problem_type: ``classification`` or ``regression``; inferred from the label's values when None.
        presets: ``fast``, ``medium`` or ``best`` (pretrained image and text encoders; the ``pretrained`` extra).
        path: The run directory (default ``runs/<label>-<timestamp>``).
        column_types: Overrides of the inferred types, ``{column: image|audio|video|series|text|categorical|
            numeric|ignore}``.
        group_column: Rows with the same value here (the same drawing, speaker or patient) go to the same
            split, so validation and the held-out rows never share one with training; not used as a feature.
        device: Where training and predictions run: ``auto`` (a CUDA GPU when there is one), ``cpu``, ``cuda``,
            ``cuda:N`` or ``mps`` (the recipe's ``trainer.device``); default ``auto``.
    """

    def __init__(
        self,
        label: str,
        problem_type: str | None = None,
        presets: str = "medium",
        path: str | Path | None = None,
        column_types: Mapping[str, str] | None = None,
        group_column: str | None = None,
        device: str | None = None,
    ) -> None:
        self.label, self.problem_type, self.presets, self.device = label, problem_type, presets, device
        self.path = Path(path) if path is not None else None
        self.column_types = {**(column_types or {}), **({group_column: "ignore"} if group_column else {})}
        self.group_column = group_column
        self.result: api.RunResult | None = None
        self._model: Any = None

    # -- fitting -----------------------------------------------------------------------------------------
    def fit(
        self,
        train_data: pd.DataFrame | str | Path,
        tuning_data: pd.DataFrame | str | Path | None = None,
        time_limit: float | None = None,
        compare: bool = False,
        callback: Callable[..., None] | None = None,
        overrides: list[str] | tuple[str, ...] = (),
    ) -> Predictor:
        """Infer the recipe, write it and the table to the run directory, train; returns ``self``.

        Args:
            train_data: Rows to learn from (10 % of them are held out as the test split, and 10 % as validation
                unless ``tuning_data`` is given).
            tuning_data: Rows for validation (early stopping, the kept epoch).
            time_limit: Seconds of training at most (stops after the epoch that reaches it).
            compare: Also train each input alone (``leaderboard`` then has a row per model).
            callback: Training progress events ``callback(event, **info)`` (see polymodal.training.trainer).
            overrides: ``key.path=value`` changes to the inferred recipe, as ``polymodal train --set``.
        """
        frame, base = read_data(train_data)
        if frame.empty:
            raise DataError("the table has no rows; give at least a few examples of each class")
        if self.label not in frame.columns:
            raise DataError(
                f"the data has no label column '{self.label}' (columns: {', '.join(map(str, frame.columns))})"
            )
        problem = self.problem_type or problem_type(frame[self.label])
        if self.group_column is not None and self.group_column not in frame.columns:
            raise DataError(f"the data has no group column '{self.group_column}'{suggest(self.group_column, frame)}")
        types = infer_types(frame, self.label, base, self.column_types)
        frame = absolute(frame, types, base)
        if tuning_data is not None:
            tuning, tuning_base = read_data(tuning_data)
            self.check_columns(tuning, types, "tuning_data", with_label=True)
            held = assign_splits(Table(frame, self.label), 0.0, 0.1, 0, stratify=problem == "classification")
            frame[SPLIT] = np.where(held == "test", "test", "train")
            tuning = absolute(tuning, types, tuning_base).assign(**{SPLIT: "val"})
            frame = pd.concat([frame, tuning], ignore_index=True)
        run = self.path or Path("runs") / f"{self.label}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        rundir = RunDir(run)
        if rundir.is_trained():
            raise CheckpointError(f"{run} already holds a trained run; choose another path")
        rundir.create()
        table = write_table(frame, run)
        typed = {**types, **({SPLIT: "ignore"} if SPLIT in frame else {})}
        raw = recipe_for_table(table, frame, self.label, self.presets, problem, typed, name=run.name)
        if SPLIT in frame:
            raw["data"]["split_column"] = SPLIT
        if self.group_column is not None:
            raw["data"]["group_column"] = self.group_column
        if time_limit:
            raw["trainer"]["time_limit"] = float(time_limit)
        if self.device is not None:
            raw["trainer"]["device"] = self.device
        recipe = api.load_recipe(raw, overrides)
        side = {"label": self.label, "presets": self.presets, "problem_type": problem, "column_types": types}
        rundir.write_json(SIDECAR, side)
        if compare:  # each input alone too; comparison.json in the run lists every model
            api.compare_modalities(recipe, run, callback=callback)
        else:
            self.result = api.train(recipe, run, callback=callback)
        self.path, self.problem_type, self.column_types, self._model = run, problem, types, None
        return self

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        """A Predictor over a run directory that ``fit`` (or ``save``) wrote."""
        run = RunDir(path)
        run.require(SIDECAR, "weights.safetensors", needs="give a folder Predictor.fit or Predictor.save wrote")
        side = run.read_json(SIDECAR)
        out = cls(side["label"], side["problem_type"], side["presets"], run.path, side["column_types"])
        return out

    def save(self, path: str | Path) -> Path:
        """Copy the run directory to ``path`` (a normal run directory; ``Predictor.load(path)`` reads it)."""
        target = Path(path)
        if target.resolve() != self.run_dir.resolve():
            shutil.copytree(self.run_dir, target)
        return target

    # -- using it ----------------------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        if self.path is None or not RunDir(self.path).is_trained():
            raise CheckpointError("this Predictor has not been fitted; call fit(train_data) or Predictor.load(path)")
        return self.path

    @property
    def model(self) -> Any:
        """The run's predictor (:class:`polymodal.api.RunPredictor`), loaded once."""
        if self._model is None:
            self._model = api.load(self.run_dir, "predict", self.device)
        return self._model

    def check_columns(self, frame: pd.DataFrame, types: Mapping[str, str], what: str, with_label: bool) -> None:
        wanted = [c for c, t in types.items() if t != "ignore"] + ([self.label] if with_label else [])
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise DataError(
                f"{what} has no column {', '.join(map(repr, missing))} that the model was trained on; add "
                "it (empty cells are allowed: the model predicts from the other inputs)"
            )

    def outputs(self, data: pd.DataFrame | str | Path) -> list[dict[str, Any]]:
        """One prediction per row (the head's description: label and probabilities, or a value)."""
        frame, base = read_data(data)
        self.check_columns(frame, self.column_types, "the data", with_label=False)
        frame = absolute(frame, self.column_types, base)
        specs = self.model.recipe.inputs
        rows = [
            {s.name: ({c: r[c] for c in s.columns} if s.columns else r[s.column]) for s in specs}
            for r in frame.to_dict("records")
        ]
        return [
            out
            for i in range(0, len(rows), BATCH)
            for out in self.model.predict_batch(rows[i : i + BATCH], empty_ok=True)
        ]

    def predict(self, data: pd.DataFrame | str | Path) -> pd.Series:
        """The predicted label (or value, for regression) of every row."""
        outs = self.outputs(data)
        values = [o["label"] if "label" in o else o[self.label]["value"] for o in outs]
        return pd.Series(values, name=self.label)

    def predict_proba(self, data: pd.DataFrame | str | Path) -> pd.DataFrame:
        """Each row's probability of each class, one column per class (classification)."""
        outs = self.outputs(data)
        if not outs or "probabilities" not in outs[0]:
            raise DataError(f"predict_proba is for classification; this model predicts values of '{self.label}'")
        return pd.DataFrame([o["probabilities"] for o in outs])

    def evaluate(self, data: pd.DataFrame | str | Path) -> dict[str, Any]:
        """The model's metrics on labelled rows it never saw (labels encoded with the run's classes)."""
        frame, base = read_data(data)
        self.check_columns(frame, self.column_types, "the data", with_label=True)
        frame = absolute(frame, self.column_types, base)
        with tempfile.TemporaryDirectory(prefix="polymodal-evaluate-") as folder:
            return api.evaluate(self.run_dir, table=write_table(frame, Path(folder)), device=self.device)

    def fit_summary(self) -> dict[str, Any]:
        """What was fitted: preset, problem, inferred column types, inputs and encoders, metrics, time."""
        run = RunDir(self.run_dir)
        record = run.record()
        split, metrics = run.final_metrics()
        recipe = self.model.recipe
        return {
            "run_dir": str(self.run_dir),
            "label": self.label,
            "problem_type": self.problem_type,
            "presets": self.presets,
            "column_types": self.column_types,
            "inputs": {s.name: f"{s.modality} → {s.encoder.name}" for s in recipe.inputs},
            "fusion": recipe.fusion.name,
            split: {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
            "best_epoch": record.get("best_epoch"),
            "epochs_run": record.get("epochs_run"),
            "train_seconds": record.get("train_seconds"),
        }

    def leaderboard(self) -> pd.DataFrame:
        """One row per model tried (each input alone and all fused with ``fit(compare=True)``), best first."""
        compared = self.run_dir / "comparison.json"
        if compared.is_file():
            rows = json.loads(compared.read_text(encoding="utf-8"))
        else:
            record = RunDir(self.run_dir).record()
            test = record.get("test") or {}
            rows = [
                {
                    "model": "+".join(s.name for s in self.model.recipe.inputs),
                    "test_accuracy": test.get("accuracy"),
                    "test_macro_f1": test.get("macro_f1"),
                    "best_epoch": record.get("best_epoch"),
                    "train_seconds": record.get("train_seconds"),
                    "run_dir": str(self.run_dir),
                }
            ]
        board = pd.DataFrame(rows)
        if "test_accuracy" in board and board["test_accuracy"].notna().any():
            board = board.sort_values("test_accuracy", ascending=False, ignore_index=True)
        return board
