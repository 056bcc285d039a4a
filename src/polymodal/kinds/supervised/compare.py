"""Each input alone and all inputs fused, trained on the same split: what fusion adds (``--compare``)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from polymodal.config import Recipe
from polymodal.errors import ConfigError
from polymodal.kinds.base import Callback, new_run_dir, read_recipe, train
from polymodal.storage import atomic_write_json
from polymodal.training import distributed


def single_input_recipe(recipe: Recipe, name: str) -> Recipe:
    """The same recipe with only input ``name`` (same encoder, fusion, head and trainer)."""
    one = copy.deepcopy(recipe)
    one.inputs = [copy.deepcopy(recipe.input(name))]
    one.name = f"{recipe.name}-{name}-only"
    return one


def compare_modalities(
    recipe: Recipe | str | Path | dict, run_dir: str | Path | None = None, callback: Callback | None = None
) -> list[dict[str, Any]]:
    """Train each input alone and all inputs fused; returns one row per model and writes comparison.json.

    The fused run goes to ``run_dir``; single-input runs to ``run_dir/unimodal/<input>``.
    """
    recipe = read_recipe(recipe)
    if not isinstance(recipe, Recipe) or recipe.kind != "supervised":
        kind = getattr(recipe, "kind", "?")
        raise ConfigError(f"--compare trains each input of a supervised recipe alone; this recipe is kind: {kind}")
    run = Path(run_dir) if run_dir is not None else new_run_dir(recipe.name, distributed.from_env())
    variants = [(s.name, single_input_recipe(recipe, s.name), run / "unimodal" / s.name) for s in recipe.inputs]
    variants.append(("+".join(s.name for s in recipe.inputs) + f" ({recipe.fusion.name})", recipe, run))
    rows = []
    for label, variant, where in variants:
        if callback:
            callback("model_start", name=label)
        res = train(variant, where, callback=callback)
        rows.append(
            {
                "model": label,
                "test_accuracy": res.test["accuracy"],
                "test_macro_f1": res.test.get("macro_f1", float("nan")),
                "best_epoch": res.best_epoch,
                "train_seconds": round(res.seconds, 1),
                "run_dir": str(where),
                "data": res.data_source,
                "skipped_rows": res.skipped,
            }
        )
    if distributed.is_main_process():
        atomic_write_json(run / "comparison.json", rows)
    return rows
