"""Fuzzing recipe parsing (issue 16): any YAML value at any key of a real recipe, any ``--set`` override and any
bytes as a recipe file give a typed recipe or one ``ConfigError`` line, never another exception.

``ConfigError`` is what parsing intends for every bad recipe (exit code 2, polymodal.errors): a ``DataError`` or
a bare ``PolymodalError`` from parsing would tell the CLI the wrong story, so these tests accept ConfigError only.
Parse only; nothing is trained. Default run: the "ci" profile (derandomised, see tests/conftest.py); the
``slow`` campaign variants draw many more examples (docs/development/tests.md, "Fuzzing").
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from polymodal.errors import ConfigError
from polymodal.kinds.base import read_recipe
from polymodal.schema import BUILTIN_RECIPES

RECIPES = ["fsdd_digits", "clipart", "shakespeare_char", "gan_mnist", "basicmotions", "pretrain_mnist_mae"]
RAW = {name: yaml.safe_load((BUILTIN_RECIPES / f"{name}.yaml").read_text()) for name in RECIPES}


def key_paths(raw: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every top-level key and every second-level key (inside sections and inside each input), plus one new key
    at each level: the places a fuzzed value is put."""
    paths: list[tuple[Any, ...]] = [("surprise",)]
    for key, value in raw.items():
        paths.append((key,))
        if isinstance(value, dict):
            paths += [(key, sub) for sub in value] + [(key, "surprise")]
        elif isinstance(value, list):
            for i, item in enumerate(value):
                paths.append((key, i))
                if isinstance(item, dict):
                    paths += [(key, i, sub) for sub in item]
    return paths


PLACES = [(name, path) for name in RECIPES for path in key_paths(RAW[name])]

# Numbers at the edges: huge ints (past int64), floats at ±inf/nan/1e308 and subnormals.
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1, 2**63, -(2**63) - 1, 1e308, -1e308, 5e-324, math.inf, -math.inf, math.nan]),
)
texts = st.one_of(st.text(max_size=30), st.sampled_from(["", "  ", "\n", "a\nb", "\x00", "concat", "cnn", "..", "~"]))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
# Keys may be any scalar YAML allows (ints, bools, None and text with newlines included).
yaml_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.one_of(texts, numbers), inner, max_size=4)),
    max_leaves=12,
)


def assert_one_line_config_error(exc: BaseException) -> None:
    assert type(exc) is ConfigError, f"{type(exc).__name__}: {exc}"
    message = str(exc)
    assert message and "\n" not in message and "\r" not in message, repr(message)


def parse_or_refuse(source: Any, overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """The parsed recipe, or None after checking the refusal is one ConfigError line."""
    try:
        return read_recipe(source, overrides)
    except Exception as exc:  # noqa: BLE001  the point: anything else is a bug
        assert_one_line_config_error(exc)
        return None


def put(raw: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    node: Any = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return raw


def check_value_at_key(place: tuple[str, tuple[Any, ...]], value: Any) -> None:
    name, path = place
    parse_or_refuse(put(RAW[name], path, value))


def test_the_unfuzzed_recipes_parse():
    for name in RECIPES:
        assert read_recipe(copy.deepcopy(RAW[name])).name == name


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PLACES), yaml_values)
@example(("fsdd_digits", ("data", "surprise\nkey")), 1)  # an unknown key with a newline in it
@example(("fsdd_digits", ("trainer", "epochs")), 2**200)
@example(("fsdd_digits", ("data", "table")), "\x00")
@example(("gan_mnist", ("evaluation", "classifier")), "x" * 5000)  # longer than a file name may be
# Found by the campaign: dict(...) of a non-mapping section, and a two-line unknown-name message.
@example(("pretrain_mnist_mae", ("trainer",)), 3)
@example(("pretrain_mnist_mae", ("trainer",)), ["a"])
@example(("shakespeare_char", ("model",)), True)
@example(("clipart", ("inputs", 0, "modality")), "\n")
def test_any_value_at_any_key_parses_or_is_one_config_error(place, value):
    check_value_at_key(place, value)


@pytest.mark.slow
@settings(max_examples=20_000, derandomize=False, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PLACES), yaml_values)
def test_campaign_any_value_at_any_key(place, value):
    check_value_at_key(place, value)


# --set overrides: key paths near the real ones (and garbage), values as the text a shell would pass.
override_keys = st.one_of(
    st.sampled_from([".".join(str(k) for k in path) for _, path in PLACES]),
    st.sampled_from(["inputs.audio.encoder.width", "inputs.image.preprocessing.size", "fusion.name", "head.dropout"]),
    st.text(alphabet="abcdefghinpt._0=", max_size=20),
)
override_values = st.one_of(
    st.text(max_size=30), yaml_values.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip())
)


def check_overrides(name: str, pairs: list[tuple[str, str]], bare: list[str]) -> None:
    parse_or_refuse(copy.deepcopy(RAW[name]), [f"{k}={v}" for k, v in pairs] + bare)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(RECIPES), st.lists(st.tuples(override_keys, override_values), max_size=3), st.just([]))
@example("fsdd_digits", [("trainer.epochs.x", "1")], [])
@example("fsdd_digits", [("", "1")], ["no-equals-sign"])
@example("fsdd_digits", [("inputs.audio.encoder", "[1, 2]")], [])
def test_any_override_parses_or_is_one_config_error(name, pairs, bare):
    check_overrides(name, pairs, bare)


@pytest.mark.slow
@settings(max_examples=10_000, derandomize=False, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(RECIPES), st.lists(st.tuples(override_keys, override_values), max_size=5), st.just([]))
def test_campaign_any_override(name, pairs, bare):
    check_overrides(name, pairs, bare)


# Whole files: arbitrary text, arbitrary bytes, and real recipes with bytes flipped or cut.
real_files = [(BUILTIN_RECIPES / f"{name}.yaml").read_bytes() for name in RECIPES]


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(real_files)))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 16))]
        else:
            del data[i:]
        if not data:
            break
    return bytes(data)


recipe_files = st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode), mutated_files())


def check_file(tmp: Path, data: bytes) -> None:
    path = tmp / "recipe.yaml"
    path.write_bytes(data)
    parse_or_refuse(str(path))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(recipe_files)
@example(b"\x00")  # a control character: yaml.ReaderError, two lines of str()
@example(b"\xff\xfe")
@example(b"name: [")
@example(b"- 1\n- 2")
@example(b"name: x\ninputs: &a [*a]")
def test_any_bytes_as_a_recipe_file_parse_or_are_one_config_error(tmp_path, data):
    check_file(tmp_path, data)


@pytest.mark.slow
@settings(
    max_examples=10_000,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(recipe_files)
def test_campaign_any_bytes_as_a_recipe_file(tmp_path, data):
    check_file(tmp_path, data)
