"""A supervised recipe for a table with no recipe: each column's type inferred (:mod:`polymodal.data.infer`) and
its input taken from a preset (``src/polymodal/recipes/presets/{fast,medium,best}.yaml``). The result is the
ordinary recipe mapping that ``polymodal train`` reads, so every such fit is reproducible and editable."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from polymodal.data.infer import infer_types, problem_type
from polymodal.errors import ConfigError, DataError, suggest

PRESET_DIR = Path(__file__).resolve().parents[2] / "recipes" / "presets"
MODALITY = {"image": "image", "audio": "audio", "video": "video", "series": "timeseries", "text": "text"}
PROBLEMS = ("classification", "regression")


def presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset(name: str) -> dict[str, Any]:
    """The preset's template (per column type: preprocessing and encoder; fusion; trainer)."""
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset '{name}'{suggest(name, presets())} (presets: {', '.join(presets())})")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def recipe_for_table(
    table: Path,
    frame: pd.DataFrame,
    label: str,
    preset_name: str = "medium",
    problem: str | None = None,
    column_types: Mapping[str, str] | None = None,
    name: str = "table",
) -> dict[str, Any]:
    """The recipe for ``frame`` (read from ``table``; its file paths relative to the table's folder).

    Image, audio, video, series and text columns each become an input; numeric and categorical columns
    together become one tabular input. A classification label gets the classification head; a regression
    label the multi-task head with one regression task (monitoring the validation loss).
    """
    if label not in frame.columns:
        raise DataError(f"the table has no label column '{label}'{suggest(label, frame.columns)}; pass label=")
    if frame.empty:
        raise DataError("the table has no rows; give at least a few examples per class")
    problem = problem or problem_type(frame[label])
    if problem not in PROBLEMS:
        raise ConfigError(f"problem_type '{problem}'; use one of {', '.join(PROBLEMS)} (or leave it out to infer)")
    if problem == "classification" and frame[label].dropna().nunique() < 2:
        only = frame[label].dropna().unique()
        raise DataError(
            f"label column '{label}' has one class ({', '.join(map(str, only[:1]))}); a classifier needs two"
        )
    template = preset(preset_name)
    types = infer_types(frame, label, table.parent, column_types)
    inputs: list[dict[str, Any]] = []
    numeric = [c for c, t in types.items() if t == "numeric"]
    categorical = [c for c, t in types.items() if t == "categorical"]
    for column, kind in types.items():
        if kind in MODALITY:
            t = copy.deepcopy(template["inputs"][kind])
            inputs.append({"name": str(column), "modality": MODALITY[kind], "column": str(column), **t})
    if numeric or categorical:
        t = copy.deepcopy(template["inputs"]["tabular"])
        t.setdefault("preprocessing", {})["categorical"] = [str(c) for c in categorical]
        name_ = "tabular" if "tabular" not in types else "tabular_columns"
        inputs.append({"name": name_, "modality": "tabular", "columns": [str(c) for c in numeric + categorical], **t})
    if not inputs:
        raise DataError(f"no column to learn from besides the label '{label}'; add columns or fix column_types")
    several = len(inputs) > 1
    trainer = dict(template["trainer"])
    if problem == "regression":
        head: Any = {"name": "multitask", "tasks": [{"column": label, "kind": "regression"}]}
        trainer["monitor"] = "loss"
    else:
        head = {"name": "classification", **template.get("head", {})}
    return {
        "name": name,
        "data": {"table": str(table), "label": label},
        "inputs": inputs,
        "fusion": template["fusion"] if several else "concat",
        "modality_dropout": template["modality_dropout"] if several else 0.0,
        "head": head,
        "trainer": trainer,
    }
