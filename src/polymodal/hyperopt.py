"""Hyperparameter search with Optuna: TPE sampling, median pruning on the per-epoch validation metric.

A search space maps recipe keys (the ``--set`` paths) to ranges or choices::

    trainer.lr: {low: 1.0e-4, high: 1.0e-2, log: true}      # float (log-uniform)
    trainer.epochs: {low: 4, high: 12}                       # int: both bounds are integers
    fusion.name: {choices: [concat, late, gated]}            # categorical

Each trial trains the recipe with its sampled values (one run directory per trial) and reports the
validation ``trainer.monitor`` after every epoch; a trial whose value is worse than the median of earlier
trials at the same epoch is stopped (pruned). The best trial's resolved recipe is written as YAML that
``polymodal train`` accepts. Optuna is an optional extra (``pip install 'polymodal[hyperopt]'``).
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from polymodal.config import Recipe, recipe_to_dict
from polymodal.errors import ConfigError, PolymodalError
from polymodal.kinds.base import read_recipe, train
from polymodal.schema import parse_dataclass
from polymodal.storage import atomic_write_text

log = logging.getLogger(__name__)


@dataclass
class ParamSpec:
    """One searched key: ``choices`` (categorical), or ``low``/``high`` (int if both are integers, else
    float; ``log`` samples log-uniformly, ``step`` discretises)."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None


@dataclass
class SearchResult:
    """A finished search: every trial as a row, the best trial and where the outputs went."""

    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    best_recipe: Path | None
    out_dir: Path
    direction: str
    seconds: float
    files: list[Path] = field(default_factory=list)


def default_space(recipe: Recipe) -> dict[str, ParamSpec]:
    """Learning rate and weight decay (log-uniform), batch size, head dropout, and the fusion when the recipe
    has several inputs."""
    space = {
        "trainer.lr": ParamSpec(low=1e-4, high=1e-2, log=True),
        "trainer.weight_decay": ParamSpec(low=1e-5, high=1e-1, log=True),
        "trainer.batch_size": ParamSpec(choices=[16, 32, 64]),
    }
    if hasattr(recipe.head.params, "dropout"):
        space["head.dropout"] = ParamSpec(low=0.0, high=0.5)
    if len(recipe.inputs) > 1:
        space["fusion.name"] = ParamSpec(choices=["concat", "late", "gated"])
    return space


def load_space(path: str | Path) -> dict[str, ParamSpec]:
    """Read a search-space YAML (``{recipe.key: {low, high, log, step} or {choices}}``) and check each entry."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"search space '{path}' not found; give a YAML file mapping recipe keys to ranges")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{p}: a search space maps recipe keys to ranges, e.g. trainer.lr: {{low: 1e-4, high: 1e-2}}")
    return {str(k): parse_dataclass(ParamSpec, v, f"{p}: {k}") for k, v in raw.items()}


def check_spec(key: str, spec: ParamSpec) -> None:
    if spec.choices is not None:
        if spec.low is not None or spec.high is not None or not spec.choices:
            raise ConfigError(f"search space {key}: give either a non-empty 'choices' list or 'low' and 'high'")
        return
    if spec.low is None or spec.high is None or spec.low > spec.high:
        raise ConfigError(f"search space {key}: needs 'low' <= 'high' (or 'choices')")
    if spec.log and spec.low <= 0:
        raise ConfigError(f"search space {key}: a log range needs low > 0, got {spec.low}")


def suggest(trial: Any, key: str, spec: ParamSpec) -> Any:
    """Draw one value for ``key`` from the Optuna trial."""
    if spec.choices is not None:
        return trial.suggest_categorical(key, spec.choices)
    if isinstance(spec.low, int) and isinstance(spec.high, int) and not isinstance(spec.step, float):
        return trial.suggest_int(key, spec.low, spec.high, step=spec.step or 1, log=spec.log)
    return trial.suggest_float(key, spec.low, spec.high, log=spec.log, step=spec.step)


def trial_recipe(recipe: str | Path | dict, overrides: list[str], values: dict[str, Any]) -> Recipe:
    """The recipe with ``--set`` overrides and one trial's values applied, validated."""
    sets = [*overrides, *(f"{k}={json.dumps(v)}" for k, v in values.items())]
    parsed = read_recipe(recipe, tuple(sets))
    if not isinstance(parsed, Recipe) or parsed.kind != "supervised":
        raise ConfigError(f"hyperopt searches supervised recipes; this recipe is kind: {parsed.kind}")
    return parsed


def search(
    recipe: str | Path | dict,
    trials: int,
    out_dir: str | Path,
    timeout: float | None = None,
    space: dict[str, ParamSpec] | None = None,
    overrides: list[str] | None = None,
    callback: Any = None,
) -> SearchResult:
    """Run an Optuna study over ``space`` and write trials.csv, trials.md and best.yaml to ``out_dir``.

    Args:
        recipe: Recipe path, built-in name or raw dict.
        trials: Number of trials at most; timeout: stop starting new trials after this many seconds.
        out_dir: Output folder; trial ``n`` trains in ``out_dir/trials/trial-NNN``.
        space: Searched keys (default :func:`default_space`).
        overrides: ``key=value`` recipe overrides applied to every trial.
        callback: ``callback(event, **info)``: ``trial_end`` with the row of each finished trial.
    """
    try:
        import optuna
    except ImportError:
        raise PolymodalError("hyperopt needs Optuna: pip install 'polymodal[hyperopt]'") from None
    overrides = list(overrides or [])
    base = trial_recipe(recipe, overrides, {})
    space = space or default_space(base)
    for key, spec in space.items():
        check_spec(key, spec)
        first = spec.choices[0] if spec.choices is not None else spec.low
        trial_recipe(recipe, overrides, {key: first})  # a bad key or value fails now, not in trial 5
    monitor = base.trainer.monitor
    direction = "minimize" if monitor == "loss" else "maximize"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=base.seed),
        # Prune against the median of earlier trials at the same epoch, once 3 trials have finished and
        # from the second epoch on (the first epoch's value says little).
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )
    recipes: dict[int, Recipe] = {}

    def objective(trial: Any) -> float:
        values = {key: suggest(trial, key, spec) for key, spec in space.items()}
        parsed = trial_recipe(recipe, overrides, values)
        parsed.name = f"{base.name}-trial{trial.number:03d}"
        recipes[trial.number] = parsed
        t0 = time.perf_counter()

        def report(event: str, **info: Any) -> None:
            if event == "epoch_end":
                trial.report(info["metrics"][f"val_{monitor}"], info["epoch"] + 1)
                if trial.should_prune():
                    raise optuna.TrialPruned()

        try:
            res = train(parsed, out / "trials" / f"trial-{trial.number:03d}", callback=report)
        finally:
            trial.set_user_attr("seconds", round(time.perf_counter() - t0, 1))
        return float(res.best_val[monitor])

    def after(study: Any, trial: Any) -> None:
        if callback:
            callback("trial_end", row=row_of(trial))

    t0 = time.perf_counter()
    # A diverging trial (loss became NaN) is recorded as failed and the search goes on.
    study.optimize(objective, n_trials=trials, timeout=timeout, catch=(FloatingPointError,), callbacks=[after])
    rows = [row_of(t) for t in study.trials]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = row_of(study.best_trial) if complete else None
    best_path = None
    files = write_tables(rows, list(space), monitor, out)
    if complete:
        chosen = copy.deepcopy(recipes[study.best_trial.number])
        chosen.name = f"{base.name}-best"
        best_path = out / "best.yaml"
        n = study.best_trial.number
        header = f"# Best of {len(rows)} trials: trial {n}, validation {monitor} {study.best_value:.4f}\n"
        atomic_write_text(best_path, header + yaml.safe_dump(recipe_to_dict(chosen), sort_keys=False))
        files.append(best_path)
    return SearchResult(rows, best, best_path, out, direction, time.perf_counter() - t0, files)


def row_of(trial: Any) -> dict[str, Any]:
    """One trial as a table row: number, state, value, the epoch it reached, its parameters, seconds."""
    return {
        "trial": trial.number,
        "state": trial.state.name.lower(),
        "value": trial.value,
        "epochs": (max(trial.intermediate_values) if trial.intermediate_values else 0),
        "seconds": trial.user_attrs.get("seconds"),
        "params": dict(trial.params),
    }


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def write_tables(rows: list[dict[str, Any]], keys: list[str], monitor: str, out: Path) -> list[Path]:
    """trials.csv (one column per searched key) and trials.md."""
    header = ["trial", "state", f"val_{monitor}", "epochs", "seconds", *keys]
    lines = [
        [r["trial"], r["state"], r["value"], r["epochs"], r["seconds"], *(r["params"].get(k) for k in keys)]
        for r in rows
    ]
    with open(out / "trials.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(lines)
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(fmt(v) for v in line) + " |" for line in lines]
    atomic_write_text(out / "trials.md", "\n".join(md) + "\n")
    return [out / "trials.csv", out / "trials.md"]


__all__ = ["ParamSpec", "SearchResult", "default_space", "load_space", "search"]
