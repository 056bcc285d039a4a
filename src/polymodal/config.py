"""The supervised recipe: inputs with encoders, a fusion and a head trained on a labelled table.

A recipe is YAML (or a dict) turned into typed dataclasses (see :mod:`polymodal.schema`). Component sections
(``encoder``, ``fusion``, ``head``, ``preprocessing``, dataset ``options``) are validated against the config
dataclass registered with that component. Other kinds of run (``kind: lm``, ``gan``, ``pretrain``,
``federated``) define their recipes in their own folder under :mod:`polymodal.kinds`, reusing these sections.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field

from polymodal.errors import ConfigError
from polymodal.registry import DATASETS, ENCODERS, FUSIONS, HEADS, MODALITIES
from polymodal.schema import (
    Fraction,
    NonNegFloat,
    NonNegInt,
    PositiveFloat,
    PositiveInt,
    parse_dataclass,
)


@dataclass
class InputSpec:
    """One model input: where its values come from, how they are prepared and encoded."""

    name: str
    modality: str
    column: str = ""
    # Several columns form one input (tabular features, time-aligned sensor streams): the cell is then a
    # {column: value} mapping. Leave empty for a single-column input.
    columns: list[str] = field(default_factory=list)
    preprocessing: Any = None
    encoder: Any = None


@dataclass
class DataConfig:
    """Where the examples come from and how they are split."""

    dataset: str | None = None
    options: Any = None
    table: str | None = None
    label: str | None = None  # default: the built-in dataset's label column, or "label" for a table
    split_column: str | None = None
    # Rows with the same value here share a split (default: the dataset's own grouping, e.g. clipart drawings).
    group_column: str | None = None
    # Multi-label heads: how labels are joined in one cell, and how often a label must occur in training.
    label_separator: str = "|"
    min_label_count: Annotated[int, Field(ge=1)] = 1
    val_fraction: Fraction = 0.1
    test_fraction: Fraction = 0.1
    # Keep only this stratified, seeded fraction of the training rows (low-label experiments); val/test stay whole.
    label_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    # Seed of the split alone (default: the recipe's seed); fix it to compare seeds on the same test rows, or to
    # keep a pretraining run's held-out rows out of a fine-tuning run's training rows.
    split_seed: NonNegInt | None = None
    cache: bool = True
    on_error: Literal["raise", "skip"] = "raise"
    disk_cache: bool = True
    disk_cache_dir: str | None = None  # default $POLYMODAL_CACHE or ~/.cache/polymodal/features
    # Stream the examples from a feature store on disk (memory-mapped .npy files under <disk_cache_dir>/store, keyed
    # by every cell's content and the preprocessing) instead of keeping them in memory: for tables whose features
    # exceed RAM. Written once, before the first epoch; replaces data.cache; needs data.disk_cache.
    store: bool = False
    # Processes that decode files and compute their features into the disk cache before the first epoch
    # (polymodal.data.prepare); unset: one per core this process may use; 0 or 1: in this process.
    prepare_workers: Annotated[int, Field(ge=0, le=256)] | None = None
    # Processes that load the training batches (augmentation runs in them; each row's draws come from its own
    # seed, so results do not depend on this number). auto: one per core (at most 4) when loading computes
    # something — an input that augments its waveform each epoch, or data.cache: false — else 0, as on one core.
    # 0: in the training process (examples already in memory come fastest that way).
    num_workers: Annotated[int, Field(ge=0, le=64)] | Literal["auto"] = "auto"
    # Keep the loading workers alive from one epoch to the next (each keeps what it decoded) instead of forking
    # them anew every epoch.
    persistent_workers: bool = True
    # Batches each loading worker prepares ahead of the training step (unset: torch's default, 2).
    prefetch_factor: Annotated[int, Field(ge=1, le=64)] | None = None
    # Seconds a loading worker may take for one batch before the run stops with an error naming the likely
    # cause (a decoder hung on a file); 0 waits forever. A worker that dies stops the run at once either way.
    worker_timeout: NonNegFloat = 300.0


@dataclass
class PrivacyConfig:
    """DP-SGD settings (``trainer.privacy``): give ``noise_multiplier`` or ``target_epsilon`` (the noise is then
    calibrated to the run's number of steps), and ``delta``.

    ``max_grad_norm`` bounds each example's gradient (its L2 norm over all parameters) before summing;
    ``delta`` should be well below 1 / (training examples).
    """

    noise_multiplier: Annotated[float, Field(ge=0.0)] | None = None
    target_epsilon: Annotated[float, Field(gt=0.0)] | None = None
    max_grad_norm: Annotated[float, Field(gt=0.0)] = 1.0
    delta: Annotated[float, Field(gt=0.0, lt=1.0)] = 1e-5

    def __post_init__(self) -> None:
        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise ConfigError("trainer.privacy: set exactly one of noise_multiplier or target_epsilon")


@dataclass
class TrainerConfig:
    """Optimisation settings for the plain training loop."""

    epochs: PositiveInt = 10
    # One batch's inputs and activations live in memory at once: 65,536 small examples is already a full-batch
    # run on most tables; 10^8 (which used to pass) would allocate for every row of a table that large.
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 64
    # muon: torch.optim.Muon (orthogonalised momentum) for the hidden weight matrices, AdamW for embeddings,
    # norms, biases and output heads; one lr for both (Muon's step is scaled to AdamW's RMS).
    optimizer: Literal["adamw", "sgd", "muon"] = "adamw"
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegFloat = 0.01
    momentum: NonNegFloat = 0.9
    # AdamW's second-moment decay; nanoGPT's small character models use 0.99 (faster to adapt, fewer steps).
    beta2: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.999
    # Muon only: Newton–Schulz iterations per step (torch's default 5; 3 is cheaper) and its momentum.
    muon_ns_steps: Annotated[int, Field(ge=1, le=10)] = 5
    muon_momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.95
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_steps: NonNegInt = 0
    min_lr_ratio: Annotated[float, Field(ge=0.0, le=1.0)] = 0.05
    grad_clip: NonNegFloat = 1.0
    # bf16 autocast; fp16 autocast with a gradient scaler (CUDA only; its scale is checkpointed); or auto: bf16
    # where a short probe of this model's steps measures it at least 10 % faster (cached per machine;
    # polymodal.training.precision), else fp32 (on CUDA: bf16 where the GPU has it, else fp16). Resume is exact in
    # every precision on the CPU; bf16/fp16 results differ from fp32 by rounding (docs/how-to/gpu.md).
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"
    # Layout of 2-D convolutions' weights (so of their activations): contiguous (NCHW), channels_last (NHWC, what
    # oneDNN and cuDNN run fastest), or auto: channels_last where a short probe of this model's steps measures it at
    # least 10 % faster (cached per machine; polymodal.training.layout). Supervised runs; others stay contiguous.
    memory_format: Literal["contiguous", "channels_last", "auto"] = "contiguous"
    # Where training runs: auto (a CUDA GPU when this machine has one, else Apple's MPS, else the CPU), cpu,
    # cuda, cuda:N or mps. Under torchrun each process takes its local GPU (NCCL), or the CPU (gloo) with cpu.
    # Supervised, pretraining and language-model runs use it; GAN and federated runs train on the CPU.
    device: Annotated[str, Field(pattern=r"^(auto|cpu|mps|cuda(:\d{1,3})?)$")] = "auto"
    monitor: Literal["accuracy", "macro_f1", "loss"] = "accuracy"
    patience: NonNegInt = 0
    checkpoint_every: NonNegInt = 100
    threads: NonNegInt = 0
    # DP-SGD: per-example clipping + noise, Poisson batches; see polymodal.privacy (None = ordinary training).
    privacy: PrivacyConfig | None = None
    tensorboard: bool = False  # scalars into <run>/tb (needs the tensorboard extra)
    time_limit: NonNegFloat = 0.0  # seconds: stop after the epoch that reaches it (0 = no limit)
    mlflow: bool = False  # parameters and per-epoch metrics to MLflow (needs the mlflow extra)


@dataclass
class InitFrom:
    """Start some encoders from a finished pretraining run (``kind: pretrain``).

    ``encoders`` maps this recipe's input names to the pretraining run's input names; empty means every input
    whose name the pretraining run also has. Those inputs also reuse the run's fitted transforms (a text
    encoder's embedding rows only mean something with the vocabulary it was pretrained with).
    """

    run: str
    encoders: dict[str, str] = field(default_factory=dict)


@dataclass
class Recipe:
    """A supervised run: data, inputs with encoders, fusion, head, trainer and seed (``kind: supervised``, the
    default when a recipe names no kind)."""

    name: str
    inputs: list[Any]  # raw mappings, validated one by one into InputSpec
    kind: Literal["supervised"] = "supervised"
    data: DataConfig = field(default_factory=DataConfig)
    fusion: Any = "concat"
    head: Any = "classification"
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    modality_dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    seed: NonNegInt = 0
    init_from: Any = None  # InitFrom, or a run directory as shorthand for {run: DIR}

    def input(self, name: str) -> InputSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise ConfigError(f"no input named '{name}' (inputs: {', '.join(s.name for s in self.inputs)})")


def parse_inputs(raw_inputs: list[Any]) -> list[InputSpec]:
    """Each input mapping validated: its modality's preprocessing keys and its encoder's keys."""
    if not raw_inputs:
        raise ConfigError("inputs: at least one input is required")
    seen: set[str] = set()
    out = []
    for i, raw in enumerate(raw_inputs):
        spec = parse_dataclass(InputSpec, raw, where=f"inputs[{i}]")
        where = f"inputs.{spec.name}"
        if spec.name in seen:
            raise ConfigError(f"{where}: duplicate input name '{spec.name}'; give each input its own name")
        seen.add(spec.name)
        modality = MODALITIES.get(spec.modality)
        spec.column = spec.column or spec.name
        spec.preprocessing = parse_dataclass(modality.config, spec.preprocessing, f"{where}.preprocessing")
        if spec.encoder is None:
            raise ConfigError(f"{where}: missing required key 'encoder'")
        spec.encoder = ENCODERS.spec(spec.encoder, f"{where}.encoder")
        out.append(spec)
    return out


def check_data(data: DataConfig) -> DataConfig:
    """One source of examples (a built-in dataset or a table), its options validated, fractions that leave
    training data."""
    if (data.dataset is None) == (data.table is None):
        raise ConfigError("data: set exactly one of 'dataset' (a built-in name) or 'table' (a CSV/Parquet/JSONL path)")
    if data.dataset is not None:
        data.options = parse_dataclass(DATASETS.get(data.dataset).config, data.options, "data.options")
    elif data.options:
        raise ConfigError("data.options: only used with a built-in 'dataset'; remove it for a table")
    if data.val_fraction + data.test_fraction >= 1.0:
        raise ConfigError("data: val_fraction + test_fraction must be below 1 so training data remains")
    return data


def parse_recipe(raw: Any, source: str = "recipe") -> Recipe:
    """Validate a raw supervised recipe mapping (as loaded from YAML) into a :class:`Recipe`."""
    try:
        recipe = parse_dataclass(Recipe, raw, where="")
        recipe.inputs = parse_inputs(recipe.inputs)
        recipe.fusion = FUSIONS.spec(recipe.fusion, "fusion")
        recipe.head = HEADS.spec(recipe.head, "head")
        if recipe.init_from is not None:
            init = recipe.init_from
            recipe.init_from = parse_dataclass(InitFrom, {"run": init} if isinstance(init, str) else init, "init_from")
        check_data(recipe.data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}".replace(": : ", ": ")) from None
    return recipe


def data_to_dict(data: DataConfig) -> dict[str, Any]:
    out = {**dataclasses.asdict(dataclasses.replace(data, options=None))}
    if data.options is not None:
        out["options"] = dataclasses.asdict(data.options)
    else:
        del out["options"]
    return out


def inputs_to_dicts(inputs: list[InputSpec]) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name,
            "modality": s.modality,
            "column": s.column,
            "columns": list(s.columns),
            "preprocessing": dataclasses.asdict(s.preprocessing),
            "encoder": s.encoder.to_dict(),
        }
        for s in inputs
    ]


def recipe_to_dict(recipe: Recipe) -> dict:
    """The fully resolved recipe (every default filled in), as plain data for YAML/JSON."""
    out = {
        "name": recipe.name,
        "kind": recipe.kind,
        "seed": recipe.seed,
        "data": data_to_dict(recipe.data),
        "inputs": inputs_to_dicts(recipe.inputs),
        "fusion": recipe.fusion.to_dict(),
        "modality_dropout": recipe.modality_dropout,
        "head": recipe.head.to_dict(),
        "trainer": dataclasses.asdict(recipe.trainer),
    }
    if recipe.init_from is not None:
        out["init_from"] = dataclasses.asdict(recipe.init_from)
    return out
