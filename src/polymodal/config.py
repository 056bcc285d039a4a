"""Recipe schema and validation.

A recipe is YAML (or a dict) turned into typed dataclasses. Validation is strict: an unknown key is an
error that names it and suggests the nearest valid key; a bad value names the key, the value and what is
allowed. Component sections (``encoder``, ``fusion``, ``head``, ``preprocessing``, dataset ``options``)
are validated against the config dataclass registered with that component.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, TypeAdapter, ValidationError

from polymodal.errors import ConfigError, suggest
from polymodal.federated.config import FederatedConfig
from polymodal.privacy.config import PrivacyConfig

PositiveInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]


@dataclass
class ComponentSpec:
    """A registered component chosen by name, with its validated config dataclass."""

    name: str
    params: Any = None


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


@dataclass
class TrainerConfig:
    """Optimisation settings for the plain training loop."""

    epochs: PositiveInt = 10
    batch_size: PositiveInt = 64
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegFloat = 0.01
    momentum: NonNegFloat = 0.9
    # AdamW's second-moment decay; nanoGPT's small character models use 0.99 (faster to adapt, fewer steps).
    beta2: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.999
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_steps: NonNegInt = 0
    min_lr_ratio: Annotated[float, Field(ge=0.0, le=1.0)] = 0.05
    grad_clip: NonNegFloat = 1.0
    precision: Literal["fp32", "bf16"] = "fp32"
    monitor: Literal["accuracy", "macro_f1", "loss"] = "accuracy"
    patience: NonNegInt = 0
    checkpoint_every: NonNegInt = 100
    threads: NonNegInt = 0
    # DP-SGD: per-example clipping + noise, Poisson batches; see polymodal.privacy (None = ordinary training).
    privacy: PrivacyConfig | None = None
    tensorboard: bool = False  # scalars into <run>/tb (needs the tensorboard extra)


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
    """A whole experiment: data, inputs with encoders, fusion, head, trainer and seed."""

    name: str
    inputs: list[Any]  # raw mappings, validated one by one into InputSpec
    data: DataConfig = field(default_factory=DataConfig)
    fusion: Any = "concat"
    head: Any = "classification"
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    modality_dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    seed: NonNegInt = 0
    federated: FederatedConfig | None = None  # used by `polymodal federated` (FedAvg simulation)
    init_from: Any = None  # InitFrom, or a run directory as shorthand for {run: DIR}

    def input(self, name: str) -> InputSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise ConfigError(f"no input named '{name}' (inputs: {', '.join(s.name for s in self.inputs)})")


# ---------------------------------------------------------------------------------------------------------
# Generic dataclass validation


def _leaf(tp: Any, value: Any, where: str) -> Any:
    try:
        return TypeAdapter(tp).validate_python(value)
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"]
        raise ConfigError(f"{where}: bad value {value!r} — {msg[0].lower()}{msg[1:]}") from None


def parse_dataclass(cls: type, data: Any, where: str) -> Any:
    """Validate a mapping against dataclass ``cls``; unknown keys and bad values raise ConfigError."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys, got {type(data).__name__} {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise ConfigError(
                f"{where}: unknown key '{key}'{suggest(str(key), fields)} (valid keys: {', '.join(fields)})"
            )
    hints = typing.get_type_hints(cls, include_extras=True)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _value(hints[name], data[name], f"{where}.{name}" if where else name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key '{name}'")
    return cls(**kwargs)


def _value(tp: Any, value: Any, where: str) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):  # an optional section: `X | None`
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) == 1 and dataclasses.is_dataclass(inner[0]):
            return None if value is None else parse_dataclass(inner[0], value, where)
    if dataclasses.is_dataclass(tp):
        return parse_dataclass(tp, value, where)
    if tp is Any:
        return value
    return _leaf(tp, value, where)


# ---------------------------------------------------------------------------------------------------------
# Recipe


def _component(registry_name: str, value: Any, where: str, default_params: Mapping | None = None) -> ComponentSpec:
    from polymodal import registry as reg

    registry = getattr(reg, registry_name)
    if isinstance(value, str):
        name, params = value, {}
    elif isinstance(value, Mapping):
        if "name" not in value:
            raise ConfigError(f"{where}: missing required key 'name' (one of: {', '.join(registry.names())})")
        name, params = value["name"], {k: v for k, v in value.items() if k != "name"}
    else:
        raise ConfigError(f"{where}: expected a name or a mapping with 'name', got {value!r}")
    entry = registry.get(str(name)) if isinstance(name, str) else registry.get(repr(name))
    merged = {**(default_params or {}), **params}
    return ComponentSpec(entry.name, parse_dataclass(entry.config, merged, where))


def parse_recipe(raw: Any, source: str = "recipe") -> Recipe:
    """Validate a raw recipe mapping (as loaded from YAML) into a :class:`Recipe`."""
    import polymodal.components  # noqa: F401  (registers every built-in component)
    from polymodal.registry import DATASETS, MODALITIES

    try:
        recipe = parse_dataclass(Recipe, raw, where="")
        if not recipe.inputs:
            raise ConfigError("inputs: at least one input is required")
        seen: set[str] = set()
        for i, spec in enumerate(recipe.inputs):
            spec = recipe.inputs[i] = parse_dataclass(InputSpec, spec, where=f"inputs[{i}]")
            where = f"inputs.{spec.name}"
            if spec.name in seen:
                raise ConfigError(f"{where}: duplicate input name '{spec.name}'; give each input its own name")
            seen.add(spec.name)
            modality = MODALITIES.get(spec.modality)
            spec.column = spec.column or spec.name
            spec.preprocessing = parse_dataclass(modality.config, spec.preprocessing, f"{where}.preprocessing")
            if spec.encoder is None:
                raise ConfigError(f"{where}: missing required key 'encoder'")
            spec.encoder = _component("ENCODERS", spec.encoder, f"{where}.encoder")
        recipe.fusion = _component("FUSIONS", recipe.fusion, "fusion")
        recipe.head = _component("HEADS", recipe.head, "head")
        if recipe.init_from is not None:
            init = recipe.init_from
            recipe.init_from = parse_dataclass(InitFrom, {"run": init} if isinstance(init, str) else init, "init_from")
        data = recipe.data
        if (data.dataset is None) == (data.table is None):
            raise ConfigError(
                "data: set exactly one of 'dataset' (a built-in name) or 'table' (a CSV/Parquet/JSONL path)"
            )
        if data.dataset is not None:
            data.options = parse_dataclass(DATASETS.get(data.dataset).config, data.options, "data.options")
        elif data.options:
            raise ConfigError("data.options: only used with a built-in 'dataset'; remove it for a table")
        if data.val_fraction + data.test_fraction >= 1.0:
            raise ConfigError("data: val_fraction + test_fraction must be below 1 so training data remains")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}".replace(": : ", ": ")) from None
    return recipe


def apply_overrides(raw: dict, overrides: Sequence[str]) -> dict:
    """Apply ``key.sub=value`` overrides (value parsed as YAML); ``inputs.<name>.`` selects an input."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}': write it as key.path=value, e.g. trainer.epochs=3")
        path, text = item.split("=", 1)
        value = yaml.safe_load(text)
        keys = path.strip().split(".")
        node: Any = raw
        for depth, key in enumerate(keys[:-1]):
            if isinstance(node, list):
                match = [x for x in node if isinstance(x, dict) and x.get("name") == key]
                if not match:
                    names = [x.get("name") for x in node if isinstance(x, dict)]
                    raise ConfigError(f"override '{item}': no entry named '{key}' (have: {names})")
                node = match[0]
            else:
                nxt = node.get(key)
                if isinstance(nxt, str) and depth + 1 < len(keys) and key in ("encoder", "fusion", "head"):
                    nxt = node[key] = {"name": nxt}
                node = node.setdefault(key, {}) if nxt is None else nxt
        node[keys[-1]] = value
    return raw


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read a YAML recipe (or a built-in recipe name such as ``avdigits``) and validate it."""
    raw, source = read_recipe_yaml(path)
    recipe = parse_recipe(apply_overrides(raw, overrides), source)
    table = recipe.data.table
    if table is not None and not Path(table).is_absolute():
        # A manifest path is relative to the recipe's folder (falling back to the working directory).
        beside = Path(source).parent / table
        recipe.data.table = str((beside if beside.exists() or not Path(table).exists() else Path(table)).resolve())
    return recipe


def read_recipe_yaml(path: str | Path) -> tuple[dict, str]:
    p = Path(path)
    if not p.exists():
        builtin = Path(__file__).parent / "recipes" / f"{p.name.removesuffix('.yaml')}.yaml"
        if p.suffix in ("", ".yaml") and builtin.exists() and len(p.parts) <= 2:
            p = builtin
        else:
            names = sorted(x.stem for x in builtin.parent.glob("*.yaml"))
            raise ConfigError(f"recipe '{path}' not found; give a YAML path or a built-in name ({', '.join(names)})")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" at line {line + 1}" if line is not None else ""
        raise ConfigError(f"{p}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: a recipe must be a YAML mapping with keys like name, data, inputs, trainer")
    return raw, str(p)


def recipe_to_dict(recipe: Recipe) -> dict:
    """The fully resolved recipe (every default filled in), as plain data for YAML/JSON."""

    def comp(spec: ComponentSpec) -> dict:
        return {"name": spec.name, **dataclasses.asdict(spec.params)}

    out = {
        "name": recipe.name,
        "seed": recipe.seed,
        "data": {
            **dataclasses.asdict(dataclasses.replace(recipe.data, options=None)),
            "options": dataclasses.asdict(recipe.data.options) if recipe.data.options else None,
        },
        "inputs": [
            {
                "name": s.name,
                "modality": s.modality,
                "column": s.column,
                "columns": list(s.columns),
                "preprocessing": dataclasses.asdict(s.preprocessing),
                "encoder": comp(s.encoder),
            }
            for s in recipe.inputs
        ],
        "fusion": comp(recipe.fusion),
        "modality_dropout": recipe.modality_dropout,
        "head": comp(recipe.head),
        "trainer": dataclasses.asdict(recipe.trainer),
    }
    if recipe.federated is not None:
        out["federated"] = dataclasses.asdict(recipe.federated)
    if recipe.init_from is not None:
        out["init_from"] = dataclasses.asdict(recipe.init_from)
    if out["data"]["options"] is None:
        del out["data"]["options"]
    return out
