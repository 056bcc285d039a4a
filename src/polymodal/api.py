"""The Python API: ``train(recipe)``, ``load(run_dir)``, ``evaluate``, ``report``, ``export``, ``compare_modalities``.

Every call works for every kind of run (supervised, federated, lm, gan, pretrain): the run kind does the work
(:mod:`polymodal.kinds`); a call that does not apply to a kind is one :class:`PolymodalError` saying what does.
The CLI and the REST server are thin shells over these calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polymodal.errors import PolymodalError
from polymodal.kinds.base import Callback, RunResult, for_run, read_recipe, require_verb
from polymodal.kinds.base import train as train_any
from polymodal.kinds.supervised.compare import compare_modalities
from polymodal.kinds.supervised.predictor import RunPredictor
from polymodal.runs import RunDir


def train(
    recipe: Any, run_dir: str | Path | None = None, resume: bool = False, callback: Callback | None = None
) -> RunResult:
    """Train a recipe end to end and score it on its held-out data.

    Args:
        recipe: A recipe object, a YAML path / built-in name, or a raw dict; its ``kind`` (default
            ``supervised``) decides what is trained.
        run_dir: Output folder; default ``runs/<name>-<timestamp>``. Must be given with ``resume``.
        resume: Continue from the run's latest checkpoint (same recipe as saved in the run).
        callback: Progress events ``callback(event, **info)``.

    Returns:
        A :class:`~polymodal.kinds.base.RunResult`; the run folder holds recipe.yaml, meta.json, weights, metrics.

    Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) every process calls this; they train one model
    with DistributedDataParallel and only rank 0 writes the run folder (see :mod:`polymodal.training.distributed`).
    When torchrun restarts the workers after a failure (``--max-restarts``), a run with a checkpoint resumes.
    """
    return train_any(recipe, run_dir, resume, callback)


def load_recipe(recipe: Any, overrides: tuple[str, ...] | list[str] = ()) -> Any:
    """A validated recipe of any kind from a YAML path, a built-in name or a raw dict (``--set`` style
    ``key.path=value`` overrides applied first)."""
    return read_recipe(recipe, overrides)


def load(run_dir: str | Path, verb: str | None = None, device: str | None = None) -> Any:
    """A finished run, ready for its use: a :class:`RunPredictor` (``.predict``) for supervised and federated runs,
    a language model (``.model``, ``.tokenizer``) for lm runs, a GAN (``.sample``) for gan runs, an assistant
    (``.chat()``: ``attach(input, path)``, ``ask(question)`` streaming the answer) for assistant runs.

    ``verb`` (``predict``, ``generate``, ``sample``, ``chat``) first checks the run's kind supports it: otherwise one
    :class:`PolymodalError` says which kinds do and what this run supports. ``device`` (``auto``, ``cpu``,
    ``cuda``, ``cuda:N``, ``mps``) is where the model runs: default the run's ``trainer.device`` for supervised
    runs, the CPU for language models; a device this machine lacks is one ConfigError line."""
    run = RunDir(run_dir)
    kind = require_verb(run, verb) if verb is not None else for_run(run)
    return kind.load(run, device)


def evaluate(
    run_dir: str | Path, split: str = "test", table: str | Path | None = None, device: str | None = None
) -> dict[str, Any]:
    """Score a finished run: a supervised model on a split of its own data or on every row of another manifest;
    other kinds by their own measure (a language model's validation text, a GAN's generated images, a
    pretraining objective's metrics).

    Args:
        run_dir: A finished run directory.
        split: train, val or test of the run's own data.
        table: A CSV/Parquet/JSONL manifest with the run's input and label columns (paths relative to it);
            its labels are encoded with the run's classes, and every readable row is evaluated.
        device: Where the model runs (default the run's ``trainer.device``); see :func:`load`.
    """
    run = RunDir(run_dir)
    kind = require_verb(run, "evaluate")
    return kind.evaluate(run, split, Path(table) if table is not None else None, device)


def report(
    run_dir: str | Path,
    split: str = "test",
    benchmark: str | Path | None = None,
    out: str | Path | None = None,
    table: str | Path | None = None,
) -> Path:
    """Write the run's self-contained HTML evaluation report (default ``run_dir/report.html``; on another
    ``table``, default ``run_dir/report-<table stem>.html``); see :func:`polymodal.report.build_report`."""
    from polymodal.report import build_report

    require_verb(RunDir(run_dir), "report")
    if table is not None and out is None:
        out = Path(run_dir) / f"report-{Path(table).stem}.html"
    return build_report(run_dir, split, benchmark, out, table)


def export(
    run_dir: str | Path,
    format: str = "onnx",
    out: str | Path | None = None,
    quantize: str | None = None,
    prune: float | None = None,
    **options: Any,
) -> Any:
    """Export a finished run's model (ONNX + sidecar JSON), optionally pruned / int8-quantised, with each step's
    size, latency and test accuracy measured; see :func:`polymodal.export.export_run`."""
    from polymodal.export import export_run

    return export_run(run_dir, format, out, quantize, prune, **options)


def sample_gan(
    run_dir: str | Path, out: str | Path, label: str | None = None, text: str | None = None, n: int = 16, seed: int = 0
) -> Path:
    """Write a one-row PNG grid of ``n`` images a GAN run generates for a class label or a caption."""
    run = RunDir(run_dir)
    return require_verb(run, "sample").load(run).save_sample(out, label, text, n, seed)


__all__ = [
    "train",
    "compare_modalities",
    "load",
    "load_recipe",
    "evaluate",
    "export",
    "report",
    "sample_gan",
    "RunPredictor",
    "RunResult",
    "PolymodalError",
]
