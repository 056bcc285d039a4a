"""Strict validation of plain data (YAML, JSON) into typed dataclasses, and reading recipe files.

The ground floor under :mod:`polymodal.config`, :mod:`polymodal.registry` and every run kind's recipe: an
unknown key is an error that names it and suggests the nearest valid key; a bad value names the key, the value
and what is allowed (pydantic checks the annotated field types).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, TypeAdapter, ValidationError

from polymodal.errors import ConfigError, printable, suggest

PositiveInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]

# Upper bounds on model sizes in recipes. Training with Adam keeps 16 bytes a parameter (weight, gradient, two
# moments), so each bound says what the first value past it would ask for; a typo such as width: 40960 is then
# a one-line ConfigError instead of an out-of-memory kill minutes later.
# A 4096-wide linear layer is 16.8M parameters (270 MB to train); a transformer layer at that width is 12× that.
Width = Annotated[int, Field(ge=1, le=4096)]
Hidden = Annotated[int, Field(ge=0, le=4096)]  # 0: no hidden layer
# Conv encoders double their channels per stage: 256 at depth 6 ends at 8,192 channels, whose 3×3 conv alone is
# 302M parameters (4.8 GB to train).
ConvWidth = Annotated[int, Field(ge=1, le=256)]
# Attention heads split the width: past 64, heads are narrower than 64 channels at the largest width.
Heads = Annotated[int, Field(ge=1, le=64)]
# Stacked layers: 48 transformer layers at width 4096 are 9.7B parameters.
Layers = Annotated[int, Field(ge=1, le=48)]

BUILTIN_RECIPES = Path(__file__).parent / "recipes"
# A recipe is a few hundred values. YAML aliases share one object many times over, so nine nested levels of ten
# aliases (a "billion laughs" file of 500 bytes) load instantly but stand for 10^9 values, which validating or
# printing them would expand: past this many values, counted with aliases expanded, a recipe is refused.
MAX_RECIPE_VALUES = 100_000


def check_size(raw: Any, where: str) -> None:
    """Refuse a loaded YAML document standing for more than MAX_RECIPE_VALUES values (stops counting there)."""
    count, stack = 0, [raw]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_RECIPE_VALUES:
            raise ConfigError(
                f"{where}: the YAML expands to over {MAX_RECIPE_VALUES:,} values (nested aliases?); write it plainly"
            )
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)


def _numbers(tp: Any) -> set[type]:
    """The number types (int, float) a field's type admits, looking inside Annotated, Optional and unions."""
    if tp in (int, float):
        return {tp}
    return {t for arg in typing.get_args(tp) for t in _numbers(arg)}


def _leaf(tp: Any, value: Any, where: str) -> Any:
    # YAML's true/false would pass as 1/0 and .inf/.nan as floats: a number field takes neither.
    if isinstance(value, bool) and _numbers(tp) and bool not in typing.get_args(tp) and tp is not bool:
        raise ConfigError(f"{where}: bad value {value!r} — a number is needed here, not true/false")
    try:
        out = TypeAdapter(tp).validate_python(value)
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"]
        raise ConfigError(f"{where}: bad value {value!r} — {msg[0].lower()}{msg[1:]}") from None
    if isinstance(out, float) and not math.isfinite(out):
        raise ConfigError(f"{where}: bad value {value!r} — give a finite number")
    return out


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
                f"{where}: unknown key '{printable(key)}'{suggest(str(key), fields)} (valid keys: {', '.join(fields)})"
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


def apply_overrides(raw: dict, overrides: Sequence[str]) -> dict:
    """Apply ``key.sub=value`` overrides (value parsed as YAML); ``inputs.<name>.`` selects an input."""
    for item in overrides:
        shown = printable(item)  # a value with a newline in it still makes a one-line message
        if "=" not in item:
            raise ConfigError(f"override '{shown}': write it as key.path=value, e.g. trainer.epochs=3")
        path, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override '{shown}': the value is not plain YAML ({exc.__class__.__name__})") from None
        check_size(value, f"override '{shown}'")
        keys = path.strip().split(".")
        node: Any = raw
        for depth, key in enumerate(keys[:-1]):
            if isinstance(node, list):
                match = [x for x in node if isinstance(x, dict) and x.get("name") == key]
                if not match:
                    names = [x.get("name") for x in node if isinstance(x, dict)]
                    raise ConfigError(f"override '{shown}': no entry named '{printable(key)}' (have: {names})")
                node = match[0]
            elif isinstance(node, dict):
                nxt = node.get(key)
                if isinstance(nxt, str) and depth + 1 < len(keys) and key in ("encoder", "fusion", "head"):
                    nxt = node[key] = {"name": nxt}
                node = node.setdefault(key, {}) if nxt is None else nxt
            else:
                raise ConfigError(f"override '{shown}': '{'.'.join(keys[:depth])}' is a value, not a section")
        if not isinstance(node, dict):
            raise ConfigError(f"override '{shown}': '{'.'.join(keys[:-1])}' is a value, not a section")
        node[keys[-1]] = value
    return raw


def builtin_names() -> list[str]:
    return sorted(x.stem for x in BUILTIN_RECIPES.glob("*.yaml"))


def find_recipe(path: str | Path) -> Path:
    """A recipe file: ``path`` itself, or the built-in recipe of that name (``avdigits``)."""
    p = Path(path)
    if p.exists():
        return p
    builtin = BUILTIN_RECIPES / f"{p.name.removesuffix('.yaml')}.yaml"
    # A bare name (avdigits) or recipes/NAME.yaml, as the README writes it; never another folder's missing file.
    bare = len(p.parts) == 1 or (len(p.parts) == 2 and p.parts[0] == "recipes")
    if p.suffix in ("", ".yaml") and builtin.exists() and bare:
        return builtin
    raise ConfigError(f"recipe '{path}' not found; give a YAML path or a built-in name ({', '.join(builtin_names())})")


def read_recipe_yaml(path: str | Path) -> tuple[dict, str]:
    """(the recipe mapping, the file it came from) of a YAML path or a built-in recipe name."""
    p = find_recipe(path)
    if p.is_dir():
        raise ConfigError(f"{p} is a folder; give a recipe YAML file inside it, or a built-in name")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not a text file ({exc.reason} at byte {exc.start}); give a YAML recipe") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot be read ({exc.strerror}); check the path and its permissions") from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" at line {line + 1}" if line is not None else ""
        # safe_load builds no objects: a !!python tag is refused here, and the fix is to drop it. A ReaderError
        # (a control character) has no problem_mark and a two-line str(): keep the message one line.
        fix = "; recipes take plain values only (no !!python tags)" if "constructor" in str(exc) else ""
        detail = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(f"{p}: not valid YAML{at}: {detail}{fix}") from None
    check_size(raw, str(p))
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: a recipe must be a YAML mapping with keys like name, data, inputs, trainer")
    return raw, str(p)


def resolve_path(value: str, base: Path | None) -> str:
    """A path a recipe names, made absolute: relative paths are read from the recipe's folder ``base`` (falling
    back to the working directory when only that holds it, as recipes written before this rule expect)."""
    p = Path(value).expanduser()
    if p.is_absolute():
        return str(p)
    if base is not None:
        beside = base / p
        if beside.exists() or not p.exists():
            return str(beside.resolve())
    return str(p.resolve())
