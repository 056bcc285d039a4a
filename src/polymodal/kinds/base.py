"""What a kind of run supplies, and the spine every kind shares.

A run kind is one folder under ``polymodal/kinds/`` whose ``__init__`` registers a :class:`RunKind` subclass
in :data:`polymodal.registry.KINDS` under the name recipes give as ``kind:``. The kind parses its recipe, trains
it (with the one :class:`~polymodal.training.trainer.Trainer` and a step strategy), loads a finished run, and
says how its results read. The spine here does the rest the same way for every kind: reading a recipe file or
mapping and resolving its relative paths against the recipe's folder, choosing and checking the run
directory, torchrun's restarts, and the one-line refusal of a verb a kind does not support.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from polymodal.errors import CheckpointError, ConfigError, PolymodalError
from polymodal.registry import KINDS
from polymodal.runs import RunDir, default_run_dir
from polymodal.schema import apply_overrides, read_recipe_yaml, resolve_path
from polymodal.training import distributed
from polymodal.training.trainer import FitResult

log = logging.getLogger(__name__)
Callback = Callable[..., None]
DEFAULT_KIND = "supervised"
VERBS = ("evaluate", "report", "predict", "generate", "sample", "chat", "export", "serve")


@dataclass
class RunResult:
    """Where a run went and how it scored.

    Attributes:
        run_dir: The run directory.
        kind: The run's kind (``supervised``, ``lm``, ``gan``, ``pretrain``, ``federated``, ...).
        metrics: The final held-out metrics, measured on ``split``.
        split: What ``metrics`` were measured on: ``test``; ``val`` for a language model (its held-out text);
            ``generated`` for a GAN (images it generated, scored by a classifier).
        record: Everything ``metrics.json`` holds (metrics, best epoch, timings, the kind's own figures).
        best_val: The scalar validation metrics of the kept epoch.
        best_epoch, epochs_run, seconds: The kept epoch (1-based), epochs trained, training wall time.
        data_source: Where the examples came from.
        skipped: Rows dropped as unreadable (``data.on_error: skip``).
        fit: The trainer's result; model: the trained model with its kept weights; data: the kind's data.
    """

    run_dir: Path
    kind: str
    metrics: dict[str, Any]
    split: str
    record: dict[str, Any]
    best_val: dict[str, Any]
    best_epoch: int
    epochs_run: int
    seconds: float
    data_source: str
    skipped: int = 0
    fit: FitResult | None = field(default=None, repr=False)
    model: nn.Module | None = field(default=None, repr=False)
    data: Any = field(default=None, repr=False)

    @property
    def test(self) -> dict[str, Any]:
        """The test-split metrics (``metrics`` of a run measured on its test split)."""
        if self.split != "test":
            raise PolymodalError(
                f"a kind: {self.kind} run is scored on its {self.split} data, not a test split; read result.metrics"
            )
        return self.metrics


@dataclass
class Outputs:
    """A finished model's outputs on one split of its data (what the HTML report's data sections read)."""

    predictor: Any
    dataset: Any
    outputs: Any
    targets: Any
    metrics: dict[str, Any]
    loss: float
    table: Path | None = None  # evaluated on every row of this manifest instead of a split of the run's data
    skipped: int = 0  # unreadable rows of ``table`` left out (data.on_error: skip)


class RunKind:
    """A kind of run. Subclasses set the class attributes and implement the methods that apply.

    Attributes:
        name: The ``kind:`` recipes give (set by the registry).
        title: The kind's name in a sentence (``language-model`` for ``lm``).
        recipe: The kind's recipe dataclass (registered as its config).
        verbs: Commands besides ``train`` that apply to its runs (from :data:`VERBS`).
        distributed: Trains under torchrun (DDP).
        on_device: Trains on ``trainer.device`` (else always on the CPU).
        paths: Recipe keys (dotted) that hold file paths, read from the recipe's folder when relative.
        split: What the final metrics are measured on.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""  # how a sentence names its runs: "a language-model run"
    recipe: ClassVar[type]
    verbs: ClassVar[frozenset[str]] = frozenset({"evaluate", "report"})
    distributed: ClassVar[bool] = False
    on_device: ClassVar[bool] = False
    why_not: ClassVar[dict[str, str]] = {}  # verb -> why it cannot apply to this kind (said in its refusal)
    paths: ClassVar[tuple[str, ...]] = ("data.table",)
    split: ClassVar[str] = "test"

    # -- recipes -----------------------------------------------------------------------------------------
    def parse(self, raw: dict[str, Any], source: str) -> Any:
        """Validate a raw mapping into the kind's recipe; every error one line naming the key."""
        raise NotImplementedError

    def to_dict(self, recipe: Any) -> dict[str, Any]:
        """The resolved recipe as plain data, re-parseable (what the run saves as recipe.yaml)."""
        raise NotImplementedError

    def resolve(self, raw: dict[str, Any], base: Path | None) -> dict[str, Any]:
        """``raw`` with each relative path of :attr:`paths` made absolute against the recipe's folder ``base``."""
        for dotted in self.paths:
            *parents, last = dotted.split(".")
            node: Any = raw
            for key in parents:
                node = node.get(key) if isinstance(node, dict) else None
            value = node.get(last) if isinstance(node, dict) else None
            if not isinstance(value, str):
                continue
            try:
                if self.is_path(dotted, value, base):
                    node[last] = resolve_path(value, base)
            except (OSError, ValueError) as exc:  # a NUL byte, a name too long for the file system
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise ConfigError(
                    f"{dotted}: {value[:80]!r} is not a usable path ({reason}); give a file's path"
                ) from None
        return raw

    def is_path(self, key: str, value: str, base: Path | None) -> bool:
        """Whether a value of a path key names a file (not a built-in name); every value does by default."""
        return bool(value)

    # -- training ----------------------------------------------------------------------------------------
    def train(
        self, recipe: Any, run: RunDir, resume: bool, callback: Callback | None, dist: distributed.Dist
    ) -> RunResult:
        raise NotImplementedError

    # -- finished runs -----------------------------------------------------------------------------------
    def load(self, run: RunDir, device: str | None = None) -> Any:
        """The finished run ready for its use verb (predict, generate or sample), its model on ``device`` (default
        the run's ``trainer.device`` where the kind trains on one, else the CPU); kinds without one refuse."""
        raise refusal(self, "predict", run.path)

    def evaluate(
        self, run: RunDir, split: str = "test", table: Path | None = None, device: str | None = None
    ) -> dict[str, Any]:
        """The run's metrics: by default the final metrics its training measured (see :meth:`RunDir.final_metrics`)."""
        if table is not None:
            raise PolymodalError(
                f"{run.path} is a kind: {self.name} run; --data is for multimodal models (drop --data)"
            )
        if split not in ("train", "val", "test"):
            raise PolymodalError(f"unknown split '{split}'; use train, val or test")
        if split != "test" and split != self.split:
            raise PolymodalError(
                f"a kind: {self.name} run is scored on its {self.split} data when training ends; drop --split"
            )
        run.require("metrics.json")
        return run.final_metrics()[1]

    def outputs(self, run: RunDir, split: str, table: Path | None, device: str | None = None) -> Outputs | None:
        """The model's outputs on a split (for the report's data sections); None when the kind has none."""
        return None

    # -- what the CLI shows ------------------------------------------------------------------------------
    def progress(self, row: dict[str, Any]) -> str:
        """One epoch's metrics row as the text after its progress bar."""
        if row.get("val_accuracy") is not None:
            return f"train loss {row['train_loss']:.3f}  val acc {row['val_accuracy']:.3f}"
        if row.get("val_loss") is not None:
            return f"train loss {row['train_loss']:.3f}  val loss {row['val_loss']:.4f}"
        return "  ".join(f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float) and k != "seconds")

    def summary(self, result: RunResult) -> list[str]:
        """What ``polymodal train`` prints when the run is done."""
        return [*self.describe(result.metrics, result.split), self.footer(result)]

    def describe(self, metrics: dict[str, Any], split: str) -> list[str]:
        """Metrics as lines (``polymodal evaluate`` and the end of training)."""
        shown = {k: v for k, v in metrics.items() if isinstance(v, float)}
        return [f"{split}: " + "  ".join(f"{k} {v:.4f}" for k, v in shown.items())]

    @staticmethod
    def footer(result: RunResult) -> str:
        return f"(best epoch {result.best_epoch}, {result.seconds:.1f} s, data: {result.data_source})"

    # -- the contract test -------------------------------------------------------------------------------
    def example(self, folder: Path) -> dict[str, Any]:
        """A tiny recipe of this kind on real data, for tests/test_contracts.py (it may write data in folder)."""
        raise NotImplementedError

    def example_use(self, run: Path, folder: Path) -> list[str]:
        """``polymodal`` arguments that use a finished example run with the kind's use verb (none by default)."""
        return []


def finish(
    kind: RunKind,
    run: RunDir,
    fit: FitResult,
    metrics: dict[str, Any],
    data_source: str,
    dist: distributed.Dist,
    extra: dict[str, Any] | None = None,
    skipped: int = 0,
    model: nn.Module | None = None,
    data: Any = None,
) -> RunResult:
    """The end of every kind's training: the final record (``metrics.json``: the kind, the split its metrics
    were measured on and the metrics under that split's name, the kept epoch and the cost, plus the kind's
    ``extra`` and the step strategy's summary), written by rank 0, and the :class:`RunResult`."""
    split = kind.split
    record = {
        "kind": kind.name,
        "split": split,
        split: metrics,
        **(extra or {}),
        "best_val": fit.best_val,
        "best_epoch": fit.best_epoch,
        "epochs_run": fit.epochs_run,
        "stopped_early": fit.stopped_early,
        "train_seconds": round(fit.seconds, 3),
        "step_seconds": round(fit.step_seconds, 3),  # inside training steps only (rank 0's clock)
        "data_wait_seconds": round(fit.data_seconds, 3),  # of which waiting for the next batch
        "train_samples": fit.samples,  # examples that went through a training step, over all processes
        "processes": dist.world_size,
        **fit.summary,
    }
    if dist.is_main:
        run.write_record(record)
    dist.barrier()  # the run folder is complete before any process returns it
    return RunResult(
        run.path, kind.name, metrics, split, record, fit.best_val, fit.best_epoch, fit.epochs_run, fit.seconds,
        data_source, skipped, fit, model, data,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# The spine

_instances: dict[str, RunKind] = {}


def kind_named(name: str) -> RunKind:
    """The registered kind ``name``; an unknown name is one ConfigError listing the kinds."""
    if name not in _instances:
        entry = KINDS.get(name)
        kind = entry.factory()
        kind.name = entry.name
        _instances[name] = kind
    return _instances[name]


def kinds() -> list[RunKind]:
    return [kind_named(n) for n in KINDS.names()]


def for_recipe(recipe: Any) -> RunKind:
    return kind_named(getattr(recipe, "kind", DEFAULT_KIND))


def for_run(run: RunDir) -> RunKind:
    """The kind of a run directory (its meta.json says); an unknown kind is one CheckpointError."""
    name = run.kind
    if name not in KINDS:
        raise CheckpointError(
            f"{run.meta_file}: kind '{name}' is not a run kind this polymodal knows ({', '.join(KINDS.names())}); "
            "upgrade polymodal or install the plug-in that trained it"
        )
    return kind_named(name)


def needs(verb: str) -> str:
    """``"`polymodal generate` is for language-model runs (kind: lm)"``: the kinds a verb applies to."""
    fits = [k for k in kinds() if verb in k.verbs]
    named = " or ".join(f"{k.title or k.name} runs (kind: {k.name})" for k in fits) or "no kind of run"
    return f"`polymodal {verb}` is for {named}"


def refusal(kind: RunKind, verb: str, run: Path, error: type[PolymodalError] = CheckpointError) -> PolymodalError:
    """One line: the verb does not apply to this kind of run (and why, where the kind says), what it is for,
    and what this run supports."""
    can = ", ".join(["train --resume", *sorted(kind.verbs)])
    why = f" ({kind.why_not[verb]})" if verb in kind.why_not else ""
    return error(f"{run} is a kind: {kind.name} run; {needs(verb)}{why} — this run supports: {can}")


def require_verb(run: RunDir, verb: str, error: type[PolymodalError] = CheckpointError) -> RunKind:
    """The run's kind, if ``verb`` applies to it; otherwise one line (an ``error``) saying what the verb needs."""
    run.require(needs=f"{needs(verb)}; give the folder `polymodal train ... --run-dir RUN` wrote")
    kind = for_run(run)
    if verb not in kind.verbs:
        raise refusal(kind, verb, run.path, error)
    return kind


def read_recipe(source: Any, overrides: tuple[str, ...] | list[str] = (), kind: str | None = None) -> Any:
    """A validated recipe of any kind from a recipe object, a raw mapping, a YAML path or a built-in name.

    ``kind:`` in the recipe picks the kind (default ``supervised``); ``kind`` here sets it (``polymodal federated``).
    Relative paths the recipe names are read from the recipe file's folder (the working directory for a mapping).
    """
    if not isinstance(source, (dict, str, Path)):
        if overrides or (kind and getattr(source, "kind", None) != kind):
            raise ConfigError("overrides and kind apply to recipe files and mappings, not to a parsed recipe")
        return source
    if isinstance(source, dict):
        raw, where, base = copy.deepcopy(source), "recipe", Path.cwd()
    else:
        raw, where = read_recipe_yaml(source)
        base = Path(where).parent
    raw = apply_overrides(raw, overrides)
    if kind is not None:
        given = raw.get("kind", DEFAULT_KIND)
        if given not in (kind, DEFAULT_KIND):
            raise ConfigError(f"{where}: this command trains kind: {kind} recipes; the recipe says kind: {given}")
        raw["kind"] = kind
    name = raw.get("kind", DEFAULT_KIND)
    if not isinstance(name, str):
        raise ConfigError(f"{where}: kind: bad value {name!r} — give one of {', '.join(KINDS.names())}")
    try:
        chosen = kind_named(name)
    except ConfigError as exc:
        raise ConfigError(f"{where}: kind: {exc}") from None
    return chosen.parse(chosen.resolve(raw, base), where)


def new_run_dir(name: str, dist: distributed.Dist) -> Path:
    # Under torchrun every process must name the same folder: rank 0's clock decides.
    return default_run_dir(name, stamp=dist.agree(dt.datetime.now().strftime("%Y%m%d-%H%M%S")))


def train(
    recipe: Any, run_dir: str | Path | None = None, resume: bool = False, callback: Callback | None = None
) -> RunResult:
    """Train a recipe of any kind end to end (see :func:`polymodal.api.train`)."""
    if not resume and run_dir is not None and distributed.restarted(Path(run_dir)):
        resume = True  # torchrun --max-restarts started this worker again after a failure: continue the run
        if os.environ.get("RANK", "0") == "0":
            attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
            log.warning("torchrun restart %s: resuming %s from its last checkpoint", attempt, run_dir)
    if resume:
        if run_dir is None:
            raise CheckpointError("--resume needs the run directory to continue (--run-dir runs/NAME)")
        saved = RunDir(run_dir)
        if not saved.recipe_file.is_file():
            raise CheckpointError(f"{run_dir} has no recipe.yaml; it is not a polymodal run directory")
        if not saved.has_checkpoint():
            raise CheckpointError(f"no checkpoint in {saved.checkpoints}; start without --resume")
        recipe = read_recipe(saved.recipe_file)
    recipe = read_recipe(recipe)
    kind = for_recipe(recipe)
    if distributed.world_size() > 1 and not kind.distributed:  # before joining the group: refuse, do not hang
        raise ConfigError(f"kind: {kind.name} runs do not train under torchrun yet; train them in one process")
    dist = distributed.from_env(recipe.trainer.device if kind.on_device else "cpu")
    run = RunDir(run_dir if run_dir is not None else new_run_dir(recipe.name, dist))
    if not resume and run.is_trained():
        raise CheckpointError(f"{run.path} already holds a trained run; choose another --run-dir or pass --resume")
    if dist.is_main:
        run.create()
    with distributed.peers_watched(dist):  # a dead peer is one line, not a gloo traceback (or a hang)
        return kind.train(recipe, run, resume, callback, dist)
