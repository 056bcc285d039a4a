"""Python API: ``train(recipe)``, ``compare_modalities(recipe)``, ``load(run_dir).predict(...)``.

The CLI and any server are thin shells over these calls.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import logging
import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import yaml

from polymodal.config import Recipe, apply_overrides, load_recipe, parse_recipe, read_recipe_yaml, recipe_to_dict
from polymodal.data.dataset import (
    DataBundle,
    ExampleDataset,
    build_data,
    build_table_data,
    build_transforms,
    check_shapes,
    collate,
    is_missing,
    pin_options,
)
from polymodal.errors import CheckpointError, ConfigError, DataError, PolymodalError
from polymodal.gan.recipe import GANRecipe, parse_gan_recipe
from polymodal.gan.sample import GANRun
from polymodal.gan.train import train_gan
from polymodal.gpt.lm import LanguageModel, LMRecipe, build_lm_data, load_lm, parse_lm_recipe
from polymodal.gpt.model import GPT, GPTConfig
from polymodal.gpt.tokenizer import load_tokenizer
from polymodal.model import MultimodalModel, build_model
from polymodal.pretrain.init import init_encoders, pretrained_transforms
from polymodal.pretrain.recipe import PretrainRecipe, parse_pretrain_recipe
from polymodal.train import distributed
from polymodal.train.checkpoint import atomic_write_text, load_weights
from polymodal.train.trainer import Callback, FitResult, Trainer

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """Where a training run went and how it scored."""

    run_dir: Path
    test: dict[str, Any]
    best_val: dict[str, Any]
    best_epoch: int
    seconds: float
    data_source: str
    skipped: int = 0
    fit: FitResult | None = field(default=None, repr=False)
    trainer: Trainer | None = field(default=None, repr=False)  # holds the best weights, ready to evaluate
    data: DataBundle | None = field(default=None, repr=False)


def default_run_dir(recipe: Recipe, root: str | Path = "runs") -> Path:
    # Under torchrun every process must name the same folder: rank 0's clock decides.
    stamp = distributed.from_env().agree(dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    return Path(root) / f"{recipe.name}-{stamp}"


def environment() -> dict[str, Any]:
    """Package versions and git state, saved with every run for reproducibility."""
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
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "git": git or None,
        "torch_threads": torch.get_num_threads(),
    }


def run_meta(data: DataBundle, model: torch.nn.Module, seed: int) -> dict[str, Any]:
    """What every run's meta.json records about its data, model and machine (callers add their own keys)."""
    train = data.splits["train"]
    return {
        "classes": data.classes,
        "target": data.target,
        "in_shapes": train.shapes,
        "in_dtypes": {k: str(d).removeprefix("torch.") for k, d in train.dtypes.items()},
        "contexts": {name: t.context() for name, t in data.transforms.items()},
        "data_source": data.source,
        "label_column": data.label,
        "sizes": {k: len(v) for k, v in data.splits.items()},
        "skipped_rows": len(data.skipped),
        "seed": seed,
        "parameters": sum(p.numel() for p in model.parameters()),
        **environment(),
    }


def as_recipe(
    recipe: Recipe | LMRecipe | GANRecipe | PretrainRecipe | str | Path | dict, overrides: tuple[str, ...] = ()
) -> Recipe | LMRecipe | GANRecipe | PretrainRecipe:
    """A validated recipe from a recipe object, a raw dict, a YAML path or a built-in name; ``kind: lm``
    selects a language-model recipe, ``kind: gan`` a conditional GAN, ``kind: pretrain`` a self-supervised one."""
    if isinstance(recipe, (Recipe, LMRecipe, GANRecipe, PretrainRecipe)):
        return recipe
    if isinstance(recipe, dict):
        raw = copy.deepcopy(recipe)
        if raw.get("kind") == "gan":
            return parse_gan_recipe(raw)
        if raw.get("kind") == "pretrain":
            return parse_pretrain_recipe(raw)
        return parse_lm_recipe(raw) if raw.get("kind") == "lm" else parse_recipe(raw)
    raw, source = read_recipe_yaml(recipe)
    if raw.get("kind") == "lm":
        return parse_lm_recipe(apply_overrides(raw, overrides), source)
    if raw.get("kind") == "gan":
        return parse_gan_recipe(apply_overrides(raw, overrides), source)
    if raw.get("kind") == "pretrain":
        return parse_pretrain_recipe(apply_overrides(raw, overrides), source)
    return load_recipe(recipe, overrides)


def train(
    recipe: Recipe | str | Path | dict,
    run_dir: str | Path | None = None,
    resume: bool = False,
    callback: Callback | None = None,
) -> RunResult:
    """Train a recipe end to end and evaluate on its test split.

    Args:
        recipe: A :class:`Recipe`, a YAML path / built-in name, or a raw dict.
        run_dir: Output folder; default ``runs/<name>-<timestamp>``. Must be given with ``resume``.
        resume: Continue from the run's latest checkpoint (same recipe as saved in the run).
        callback: Progress events ``callback(event, **info)``.

    Returns:
        A :class:`RunResult`; the run folder holds recipe.yaml, meta.json, weights, metrics.

    Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) every process calls this; they train one model
    with DistributedDataParallel and only rank 0 writes the run folder (see :mod:`polymodal.train.distributed`).
    When torchrun restarts the workers after a failure (``--max-restarts``), a run with a checkpoint resumes.
    """
    if not resume and run_dir is not None and distributed.restarted(Path(run_dir)):
        resume = True  # torchrun --max-restarts started this worker again after a failure: continue the run
        if os.environ.get("RANK", "0") == "0":
            attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
            log.warning("torchrun restart %s: resuming %s from its last checkpoint", attempt, run_dir)
    if resume:
        if run_dir is None:
            raise CheckpointError("--resume needs the run directory to continue (--run-dir runs/NAME)")
        saved = Path(run_dir) / "recipe.yaml"
        if not saved.is_file():
            raise CheckpointError(f"{run_dir} has no recipe.yaml; it is not a polymodal run directory")
        recipe = as_recipe(saved)
    recipe = as_recipe(recipe)
    run = Path(run_dir) if run_dir is not None else default_run_dir(recipe)
    if not resume and (run / "weights.safetensors").exists():
        raise CheckpointError(f"{run} already holds a trained run; choose another --run-dir or pass --resume")
    dist = distributed.from_env()
    if isinstance(recipe, LMRecipe):
        return train_lm(recipe, run, resume, callback, dist)
    if isinstance(recipe, GANRecipe):
        record = train_gan(recipe, run, resume, callback)
        meta = json.loads((run / "meta.json").read_text(encoding="utf-8"))
        return RunResult(run, record, {}, record["epochs_run"], record["train_seconds"], meta["data_source"])
    if isinstance(recipe, PretrainRecipe):
        from polymodal.pretrain.run import train_pretrain

        return train_pretrain(recipe, run, resume, callback)
    if dist.is_main:
        run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    states_file = run / "transforms.json"
    states = json.loads(states_file.read_text(encoding="utf-8")) if resume and states_file.is_file() else None
    if recipe.init_from is not None and not resume:
        states = pretrained_transforms(recipe.init_from, recipe)  # a pretrained text encoder needs its vocabulary
    data = build_data(recipe, transform_states=states)
    in_shapes = data.splits["train"].shapes
    check_monitor(recipe, data.target)
    contexts = {name: t.context() for name, t in data.transforms.items()}
    model = build_model(recipe, in_shapes, data.target, contexts)
    initialised = init_encoders(model.encoders, recipe.init_from, recipe) if recipe.init_from and not resume else {}
    states = {name: t.state_dict() for name, t in data.transforms.items()}
    check_same_everywhere(dist, states)
    if dist.is_main:
        write_run_files(run, recipe, data, model, states, resume, initialised)
    trainer = Trainer(model, recipe.trainer, run, recipe.seed, callback, dist)
    fit = trainer.fit(data.splits["train"], data.splits["val"], resume=resume)
    test = trainer.evaluate(data.splits["test"])
    record = {
        "test": test,
        "test_without": modality_ablation(trainer, data.splits["test"]),
        "skipped_rows": len(data.skipped),
        "best_val": fit.best_val,
        "best_epoch": fit.best_epoch,
        "epochs_run": fit.epochs_run,
        "stopped_early": fit.stopped_early,
        "train_seconds": round(fit.seconds, 3),
        "step_seconds": round(fit.step_seconds, 3),  # inside training steps only (rank 0's clock)
        "train_samples": fit.samples,  # examples that went through a training step, over all processes
        "processes": dist.world_size,
    }
    if fit.privacy is not None:
        record["privacy"] = fit.privacy
    if dist.is_main:
        atomic_write_text(run / "metrics.json", json.dumps(record, indent=2))
    dist.barrier()  # the run folder is complete before any process returns it
    return RunResult(
        run, test, fit.best_val, fit.best_epoch, fit.seconds, data.source, len(data.skipped), fit, trainer, data
    )


def check_same_everywhere(dist: distributed.Dist, states: dict[str, Any]) -> None:
    """Every process fits the transforms on the same training split; stop if one learnt something else
    (e.g. files that changed between reads), since rank 0's transforms.json would not describe the others."""
    mine = json.dumps(states, sort_keys=True)
    if dist.agree(mine) != mine:
        raise DataError(f"process {dist.rank} fitted different input transforms than rank 0; is the data changing?")


def write_run_files(
    run: Path,
    recipe: Recipe,
    data: DataBundle,
    model: MultimodalModel,
    states: dict,
    resume: bool,
    initialised: dict[str, Any],
) -> None:
    """recipe.yaml (new runs), meta.json, transforms.json and skipped.json (when rows were skipped)."""
    if not resume:
        atomic_write_text(
            run / "recipe.yaml", yaml.safe_dump(recipe_to_dict(pin_options(recipe, data)), sort_keys=False)
        )
    meta = run_meta(data, model, recipe.seed)
    if initialised:
        meta["init_from"] = {"run": recipe.init_from.run, "encoders": initialised}
    if resume and (run / "meta.json").is_file():
        meta["init_from"] = json.loads((run / "meta.json").read_text(encoding="utf-8")).get("init_from")
    atomic_write_text(run / "meta.json", json.dumps(meta, indent=2))
    atomic_write_text(run / "transforms.json", json.dumps(states))
    if data.skipped:
        atomic_write_text(run / "skipped.json", json.dumps(data.skipped, indent=2))


def train_lm(
    recipe: LMRecipe, run: Path, resume: bool, callback: Callback | None, dist: distributed.Dist | None = None
) -> RunResult:
    """Pretrain (or, with ``init_from``, fine-tune) a GPT on a corpus; same run directory layout."""
    dist = dist or distributed.Dist()
    if dist.is_main:
        run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    base = None
    tokenizer = None
    if resume and (run / "tokenizer.json").is_file():
        tokenizer = load_tokenizer(json.loads((run / "tokenizer.json").read_text(encoding="utf-8")))
    if recipe.init_from:
        base, base_tok, base_meta = load_lm(recipe.init_from)
        tokenizer = tokenizer or base_tok
        # The architecture is the base model's; only dropout may differ when fine-tuning.
        recipe.model = GPTConfig(**{**base_meta["model"], "dropout": recipe.model.dropout})
    data = build_lm_data(recipe, tokenizer)
    cfg = dataclasses.replace(recipe.model, vocab_size=data.tokenizer.vocab_size)
    model = LanguageModel(GPT(cfg))
    if base is not None and not resume:
        model.gpt.load_state_dict(base.state_dict())
    if dist.is_main and not resume:
        atomic_write_text(run / "recipe.yaml", yaml.safe_dump(dataclasses.asdict(recipe), sort_keys=False))
    if dist.is_main:
        atomic_write_text(run / "tokenizer.json", json.dumps(data.tokenizer.state_dict()))
    meta = {
        "kind": "lm",
        "model": dataclasses.asdict(cfg),
        "data_source": data.source,
        "tokens": {"train": len(data.train.tokens), "val": len(data.val.tokens)},
        "seed": recipe.seed,
        "parameters": model.gpt.num_params(),
        "init_from": recipe.init_from,
        **environment(),
    }
    if dist.is_main:
        atomic_write_text(run / "meta.json", json.dumps(meta, indent=2))
    trainer = Trainer(model, recipe.trainer, run, recipe.seed, callback, dist)
    fit = trainer.fit(data.train, data.val, resume=resume)
    val = trainer.evaluate(data.val)
    record = {"val": val, "best_epoch": fit.best_epoch, "epochs_run": fit.epochs_run, "train_seconds": fit.seconds}
    if dist.is_main:
        atomic_write_text(run / "metrics.json", json.dumps(record, indent=2))
    dist.barrier()
    return RunResult(run, val, fit.best_val, fit.best_epoch, fit.seconds, data.source, 0, fit, trainer, None)


def check_monitor(recipe: Recipe, target: dict[str, Any]) -> None:
    """A multi-task head without classification tasks has no accuracy to monitor."""
    has_classes = target["kind"] != "multitask" or any(t["kind"] == "classification" for t in target["tasks"])
    if not has_classes and recipe.trainer.monitor != "loss":
        raise ConfigError(
            f"trainer.monitor: '{recipe.trainer.monitor}' needs a classification task; set trainer.monitor: loss"
        )


def modality_ablation(trainer: Trainer, ds: ExampleDataset) -> dict[str, float]:
    """Accuracy with each input removed (treated as missing in every row); empty for a single input."""
    names = list(ds.columns)
    if len(names) < 2:
        return {}
    return {name: trainer.evaluate(ds.view(removed=frozenset({name})))["accuracy"] for name in names}


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
    recipe = as_recipe(recipe)
    run = Path(run_dir) if run_dir is not None else default_run_dir(recipe)
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
        atomic_write_text(run / "comparison.json", json.dumps(rows, indent=2))
    return rows


class Predictor:
    """A trained run, ready to predict from raw inputs (file paths, arrays, values).

    Args:
        run_dir: A finished run folder (recipe.yaml, meta.json, weights.safetensors).
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        for needed in ("recipe.yaml", "meta.json", "transforms.json", "weights.safetensors"):
            if not (self.run_dir / needed).is_file():
                raise CheckpointError(f"{self.run_dir} has no {needed}; give a finished run directory")
        self.recipe = load_recipe(self.run_dir / "recipe.yaml")
        self.meta = json.loads((self.run_dir / "meta.json").read_text(encoding="utf-8"))
        self.classes: list[str] = self.meta["classes"]
        self.target: dict[str, Any] = self.meta.get("target") or {"kind": "class", "classes": self.classes}
        self.transform_states = json.loads((self.run_dir / "transforms.json").read_text(encoding="utf-8"))
        self.transforms = build_transforms(self.recipe.inputs)
        for name, t in self.transforms.items():
            t.load_state_dict(self.transform_states.get(name, {}))
        self.model: MultimodalModel = build_model(
            self.recipe, self.meta["in_shapes"], self.target, self.meta.get("contexts")
        )
        load_weights(self.model, self.run_dir / "weights.safetensors")
        self.model.eval()

    def data(self) -> DataBundle:
        """The run's own data, split and preprocessed as in training (its fitted transforms and classes)."""
        data = build_data(self.recipe, transform_states=self.transform_states, target_info=self.target)
        check_shapes(data.splits["train"].shapes, self.meta["in_shapes"], data.source, self.trained_on)
        return data

    def table_data(self, table: str | Path) -> tuple[ExampleDataset, list[dict[str, Any]]]:
        """Every row of another manifest in the run's preprocessing and label encoding, and the skipped rows;
        see :func:`polymodal.data.dataset.build_table_data`."""
        label = self.meta.get("label_column", "label")
        ds, skipped = build_table_data(self.recipe, table, self.transform_states, self.target, label)
        check_shapes(ds.shapes, self.meta["in_shapes"], str(table), self.trained_on)
        return ds, skipped

    @property
    def trained_on(self) -> str:
        return str(self.meta.get("data_source", "?"))

    @property
    def inputs(self) -> dict[str, str]:
        """``{input name: modality}`` that :meth:`predict` expects."""
        return {s.name: s.modality for s in self.recipe.inputs}

    def prepare(self, **values: Any) -> tuple[dict[str, torch.Tensor], dict[str, bool], list[str]]:
        """Check and preprocess one example's raw inputs (no model work).

        Returns:
            ``(example, present, missing)``: one tensor per input (a zero placeholder of the trained shape and
            dtype for a missing input), ``{input: given?}``, and the missing input names.
        """
        unknown = sorted(set(values) - set(self.inputs))
        if unknown:
            raise DataError(f"unknown input {unknown}; this model takes {', '.join(self.inputs)}")
        missing = [k for k in self.inputs if is_missing(values.get(k))]
        if len(missing) == len(self.inputs):
            raise DataError(f"no input given; this model takes {', '.join(self.inputs)} (at least one)")
        example = {}
        for name in self.inputs:
            expected = tuple(self.meta["in_shapes"][name])
            if name in missing:
                dtype = getattr(torch, self.meta.get("in_dtypes", {}).get(name, "float32"))
                example[name] = torch.zeros(expected, dtype=dtype)
                continue
            x = self.transforms[name](values[name])
            if tuple(x.shape) != expected:
                raise DataError(
                    f"input '{name}' became a tensor of shape {tuple(x.shape)} but this model was trained on "
                    f"{expected}; give the same kind of {self.inputs[name]} input it was trained on "
                    f"(data: {self.meta.get('data_source', '?')})"
                )
            example[name] = x
        return example, {k: k not in missing for k in self.inputs}, missing

    @torch.inference_mode()
    def run(
        self,
        prepared: list[tuple[dict[str, torch.Tensor], dict[str, bool], list[str]]],
        forward: Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor] | None], torch.Tensor] | None = None,
    ) -> list[dict[str, Any]]:
        """One batched forward over examples from :meth:`prepare`; one result per example, in order.

        ``forward`` replaces the PyTorch model's, e.g. :class:`polymodal.export.runtime.OnnxForward`."""
        inputs, flags, _ = collate([(x, p, torch.tensor(0)) for x, p, _ in prepared])
        logits = (forward or self.model)(inputs, flags)  # (B, K)
        return [{**self.model.head.describe(lg), "missing": m} for lg, (_, _, m) in zip(logits, prepared, strict=True)]

    def predict(self, **values: Any) -> dict[str, Any]:
        """Predict one example: ``predict(image="x.png", audio="y.wav")``.

        An input given as None or "" (or left out) is missing: the model predicts from the others, as it
        was trained to with ``modality_dropout``. At least one input must be given.

        Returns:
            The head's description (classification: ``{"label", "probabilities"}`` with classes in the run's
            order) plus ``"missing": [input names]``.
        """
        return self.run([self.prepare(**values)])[0]

    def predict_batch(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """:meth:`predict` for several examples with one forward pass."""
        if not rows:
            return []
        return self.run([self.prepare(**row) for row in rows])


def sample_gan(
    run_dir: str | Path, out: str | Path, label: str | None = None, text: str | None = None, n: int = 16, seed: int = 0
) -> Path:
    """Write a one-row PNG grid of ``n`` images a GAN run generates for a class label or a caption."""
    return GANRun(run_dir).save_sample(out, label, text, n, seed)


def load(run_dir: str | Path) -> Predictor:
    """Load a finished run for prediction."""
    return Predictor(run_dir)


def evaluate(run_dir: str | Path, split: str = "test", table: str | Path | None = None) -> dict[str, Any]:
    """Re-evaluate a finished run's weights on one split of its own data, or on every row of another manifest.

    Args:
        run_dir: A finished run directory.
        split: train, val or test of the run's own data (ignored when ``table`` is given).
        table: A CSV/Parquet/JSONL manifest with the run's input and label columns (paths relative to it);
            its labels are encoded with the run's classes, and every readable row is evaluated.
    """
    predictor = load(run_dir)
    skipped: list[dict[str, Any]] = []
    if table is not None:
        ds, skipped = predictor.table_data(table)
        split = Path(table).name
    else:
        if split not in ("train", "val", "test"):
            raise DataError(f"unknown split '{split}'; use train, val or test")
        ds = predictor.data().splits[split].view()
    trainer = Trainer(predictor.model, predictor.recipe.trainer, predictor.run_dir, predictor.recipe.seed)
    t0 = time.perf_counter()
    result = trainer.evaluate(ds)
    without = modality_ablation(trainer, ds)
    out = {**result, "without": without, "split": split, "seconds": round(time.perf_counter() - t0, 3)}
    return {**out, "skipped_rows": len(skipped)} if table is not None else out


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

    if table is not None and out is None:
        out = Path(run_dir) / f"report-{Path(table).stem}.html"
    return build_report(run_dir, split, benchmark, out, table)


__all__ = [
    "train",
    "compare_modalities",
    "load",
    "evaluate",
    "export",
    "report",
    "sample_gan",
    "Predictor",
    "RunResult",
    "PolymodalError",
]
