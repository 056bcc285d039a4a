"""The AV-MNIST export (MultiBench's on-disk layout) of a recipe's image + audio split."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import tiny_recipe

from polymodal import api
from polymodal.cli.main import main
from polymodal.data.dataset import build_data
from polymodal.data.datasets.avmnist import export_avmnist
from polymodal.errors import ConfigError


def test_export_writes_the_layout_with_polymodal_split_and_round_trips(manifest, tmp_path):
    recipe = api.load_recipe(tiny_recipe(manifest))
    meta = export_avmnist(recipe, tmp_path / "av")
    data = build_data(recipe)
    n = {name: len(ds) for name, ds in data.splits.items()}
    assert (meta["train"], meta["val"], meta["test"]) == (n["train"], n["val"], n["test"])
    img = np.load(tmp_path / "av/image/train_data.npy")
    wav = np.load(tmp_path / "av/audio/train_data.npy")
    labels = np.load(tmp_path / "av/train_labels.npy")
    assert img.shape == (n["train"] + n["val"], 28, 28) and img.dtype == np.float32
    assert wav.shape == (n["train"] + n["val"], 112, 112) and wav.dtype == np.float32
    assert np.load(tmp_path / "av/image/test_data.npy").shape == (n["test"], 28, 28)
    assert np.load(tmp_path / "av/audio/test_data.npy").shape == (n["test"], 112, 112)
    assert img.min() >= 0 and img.max() <= 255 and wav.min() >= 0 and wav.max() <= 255
    # Training rows first, then validation rows, each with polymodal's class index and image.
    train, val = data.splits["train"], data.splits["val"]
    np.testing.assert_array_equal(labels, np.concatenate([train.targets.numpy(), val.targets.numpy()]))
    np.testing.assert_array_equal(np.load(tmp_path / "av/test_labels.npy"), data.splits["test"].targets.numpy())
    for i, ds, row in ((0, train, 0), (n["train"], val, 0)):
        pixels = (ds[row][0]["image"][0].numpy() * 0.5 + 0.5) * 255  # the recipe's mean/std 0.5 undone
        np.testing.assert_allclose(img[i], pixels, atol=1e-3)
    # What MultiBench's loader does with the files: /255, add a channel.
    x = np.expand_dims(img / 255.0, 1)
    assert x.shape[1:] == (1, 28, 28) and x.max() <= 1.0
    saved = json.loads((tmp_path / "av/split.json").read_text())
    assert saved["classes"] == data.classes and len(saved["table_rows"]["test"]) == n["test"]


def test_export_refuses_a_recipe_without_image_and_audio(manifest, tmp_path):
    raw = tiny_recipe(manifest)
    raw["inputs"] = raw["inputs"][:1]
    with pytest.raises(ConfigError, match="one image and one audio"):
        export_avmnist(api.load_recipe(raw), tmp_path / "av")


def test_cli_export_avmnist(manifest, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps(tiny_recipe(manifest)))
    with pytest.raises(SystemExit) as exc:
        main(["datasets", "export-avmnist", str(recipe), str(tmp_path / "av"), "--set", "seed=1"])
    assert exc.value.code == 0
    assert "written" in capsys.readouterr().out
    assert (tmp_path / "av/audio/test_data.npy").is_file()
