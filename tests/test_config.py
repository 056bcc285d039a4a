"""Recipe validation: unknown keys suggest the nearest valid one; bad values name key, value and what is allowed."""

from __future__ import annotations

import copy

import pytest
import yaml

from polymodal.api import load_recipe
from polymodal.config import parse_recipe, recipe_to_dict
from polymodal.errors import ConfigError
from polymodal.schema import apply_overrides, read_recipe_yaml

BASE, _ = read_recipe_yaml("avdigits")


def error(raw: dict) -> str:
    with pytest.raises(ConfigError) as e:
        parse_recipe(raw, "r.yaml")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("r.yaml: ")
    return msg


def edit(path: str, value: object) -> dict:
    return apply_overrides(copy.deepcopy(BASE), [f"{path}={yaml.safe_dump(value).strip().removesuffix('...').strip()}"])


@pytest.mark.parametrize(
    ("path", "suggestion"),
    [
        ("trainer.lrr", "lr"),
        ("trainer.epoch", "epochs"),
        ("inputs.image.encoder.widht", "width"),
        ("inputs.audio.preprocessing.n_mel", "n_mels"),
        ("data.options.audi", "audio"),
        ("sead", "seed"),
    ],
)
def test_unknown_key_names_it_and_suggests(path, suggestion):
    msg = error(edit(path, 1))
    assert f"unknown key '{path.rsplit('.', 1)[-1]}'" in msg and f"did you mean '{suggestion}'" in msg


def test_bad_choice_lists_allowed_values():
    msg = error(edit("trainer.optimizer", "adam"))
    assert "trainer.optimizer" in msg and "'adam'" in msg and "adamw" in msg and "sgd" in msg


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("trainer.lr", -1),
        ("trainer.epochs", 0),
        ("trainer.batch_size", "x"),
        ("data.val_fraction", 1.5),
        ("inputs.image.preprocessing.channels", 2),
    ],
)
def test_bad_value_names_key_and_value(path, value):
    msg = error(edit(path, value))
    assert path in msg and repr(value) in msg


def test_unknown_component_lists_available():
    msg = error(edit("inputs.image.encoder.name", "resnet9000"))
    assert "unknown encoder 'resnet9000'" in msg and "image_cnn" in msg
    msg = error(edit("fusion", "concatt"))
    assert "unknown fusion" in msg and "did you mean 'concat'" in msg
    assert "unknown modality 'imagee'" in error(edit("inputs.image.modality", "imagee"))


def test_structural_errors():
    assert "at least one input" in error({**BASE, "inputs": []})
    dup = copy.deepcopy(BASE)
    dup["inputs"][1]["name"] = "image"
    assert "duplicate input name 'image'" in error(dup)
    both = copy.deepcopy(BASE)
    both["data"]["table"] = "x.csv"
    assert "exactly one of 'dataset'" in error(both)
    neither = copy.deepcopy(BASE)
    del neither["data"]["dataset"], neither["data"]["options"]
    assert "exactly one of 'dataset'" in error(neither)
    no_encoder = copy.deepcopy(BASE)
    del no_encoder["inputs"][0]["encoder"]
    assert "missing required key 'encoder'" in error(no_encoder)
    assert "missing required key 'name'" in error({k: v for k, v in BASE.items() if k != "name"})


def test_yaml_syntax_error_gives_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\ninputs:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d"):
        load_recipe(p)


def test_missing_recipe_file_lists_builtins():
    with pytest.raises(ConfigError, match="avdigits"):
        load_recipe("nowhere/recipe.yaml")


def test_overrides_select_inputs_by_name():
    raw = apply_overrides(copy.deepcopy(BASE), ["inputs.audio.encoder.width=8", "trainer.epochs=3", "fusion.name=late"])
    recipe = parse_recipe(raw)
    assert recipe.input("audio").encoder.params.width == 8
    assert recipe.trainer.epochs == 3 and recipe.fusion.name == "late"
    with pytest.raises(ConfigError, match="no entry named 'video'"):
        apply_overrides(copy.deepcopy(BASE), ["inputs.video.encoder.width=8"])
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides({}, ["trainer.epochs"])


def test_resolved_recipe_round_trips():
    recipe = load_recipe("avdigits")
    resolved = recipe_to_dict(recipe)
    assert resolved["trainer"]["momentum"] == 0.9  # defaults are filled in
    again = recipe_to_dict(parse_recipe(yaml.safe_load(yaml.safe_dump(resolved))))
    assert again == resolved


def test_builtin_recipe_loads_by_name_and_path():
    assert load_recipe("avdigits").name == load_recipe("recipes/avdigits.yaml").name == "avdigits"
