"""Label leaks in text: the fit-time warning, ``preprocessing.drop_label_words`` in training and through a loaded
run's Predictor, and the clipart option that shares its mechanism. Data: real MNIST digits named in words."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from polymodal import api
from polymodal.data.dataset import build_data
from polymodal.data.datasets.clipart import Clipart, clean_keywords, clipart_dir
from polymodal.data.datasets.mnist import mnist_arrays
from polymodal.data.leak import WordRemover, label_words, leak_rate
from polymodal.data.modalities.text import PAD, TextTransform
from polymodal.errors import DataError

NAMES = ["zero", "one", "two"]
PER_CLASS = 25


def leaky_manifest(folder: Path) -> Path:
    """image (real MNIST PNG) + caption naming its digit in all but one row per class + label (the word)."""
    folder.mkdir(parents=True, exist_ok=True)
    x, y = mnist_arrays()
    rows = []
    for digit, name in enumerate(NAMES):
        for j, i in enumerate((y == digit).nonzero()[0][:PER_CLASS]):
            Image.fromarray(x[i]).save(folder / f"{digit}_{j}.png")
            caption = f"a hand-written {name} on paper" if j else "a scanned digit on paper"
            rows.append({"image": f"{digit}_{j}.png", "caption": caption, "label": name})
    path = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def recipe(manifest: Path, drop: bool) -> dict:
    return {
        "name": "leak",
        "seed": 0,
        "data": {"table": str(manifest), "val_fraction": 0.2, "test_fraction": 0.2},
        "inputs": [
            {"name": "image", "modality": "image", "encoder": {"name": "image_cnn", "width": 4, "out_dim": 8}},
            {
                "name": "caption",
                "modality": "text",
                "preprocessing": {"vocab_size": 60, "min_frequency": 1, "max_length": 8, "drop_label_words": drop},
                "encoder": {"name": "text_bag", "embed_dim": 8, "out_dim": 8},
            },
        ],
        "fusion": "concat",
        "trainer": {"epochs": 1, "batch_size": 8, "lr": 0.01, "checkpoint_every": 0, "threads": 1},
    }


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return leaky_manifest(tmp_path_factory.mktemp("leak"))


@pytest.fixture(scope="module")
def run(manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "dropped"
    api.train(recipe(manifest, drop=True), out)
    return out


def class_tokens(transform, ids: torch.Tensor) -> set[str]:
    """The class-name words among an example's tokens (WordPiece pieces joined back into words)."""
    words = " ".join(transform.token_strings(ids[ids != PAD])).replace(" ##", "").split()
    return set(words) & set(NAMES)


def test_label_words_are_whole_words_of_every_class_name():
    assert label_words("signs_and_symbols") == {"signs", "sign", "symbols", "symbol", "signs_and_symbols"}
    remove = WordRemover(label_words(*NAMES))
    assert remove("Someone wrote ONE, then two-three") == "Someone wrote , then -three"
    assert leak_rate(["a one", "a two", "one two", "none"], [["one"], ["two"], ["one"], ["two"]], NAMES) == 0.5


def test_a_text_input_naming_its_label_is_warned_about_at_fit(manifest, caplog):
    with caplog.at_level(logging.WARNING, logger="polymodal"):
        data = build_data(api.load_recipe(recipe(manifest, drop=False)))
    warned = [r.getMessage() for r in caplog.records if "leaks the label" in r.getMessage()]
    assert len(warned) == 1 and "'caption'" in warned[0] and "preprocessing.drop_label_words: true" in warned[0]
    # Without the option the class word reaches the model.
    assert class_tokens(data.transforms["caption"], data.transforms["caption"]("a hand-written two")) == {"two"}


def test_no_warning_with_the_option_or_for_text_that_does_not_name_the_label(manifest, caplog):
    plain = pd.read_csv(manifest).assign(caption="a digit on paper")
    plain.to_csv(manifest.parent / "plain.csv", index=False)
    with caplog.at_level(logging.WARNING, logger="polymodal"):
        build_data(api.load_recipe(recipe(manifest, drop=True)))
        build_data(api.load_recipe(recipe(manifest.parent / "plain.csv", drop=False)))
    assert not [r for r in caplog.records if "leaks the label" in r.getMessage()]


def test_dropped_label_words_never_reach_the_training_tensors(manifest):
    data = build_data(api.load_recipe(recipe(manifest, drop=True)))
    caption = data.transforms["caption"]
    for split in data.splits.values():
        for i in range(len(split)):
            assert not class_tokens(caption, split[i][0]["caption"])
    assert all(caption.token_id(name) is None for name in NAMES)  # the vocabulary was learnt without them
    assert torch.equal(caption("a hand-written two on paper"), caption("a hand-written on paper"))


def test_a_loaded_run_removes_the_same_words_when_predicting(run, manifest):
    predictor = api.load(run)
    caption = predictor.transforms["caption"]
    assert caption.drop_label_words and torch.equal(caption("One ZERO two"), caption(""))
    image = str(manifest.parent / "2_3.png")
    named = predictor.predict(image=image, caption="a hand-written two on paper")
    unnamed = predictor.predict(image=image, caption="a hand-written on paper")
    assert named["probabilities"] == pytest.approx(unnamed["probabilities"])


def test_the_option_and_its_words_round_trip_through_the_saved_run(run):
    saved = json.loads((run / "transforms.json").read_text())["caption"]
    assert saved["label_words"] == sorted(label_words(*NAMES))
    assert api.load(run).recipe.inputs[1].preprocessing.drop_label_words is True
    assert api.load(run).transforms["caption"].state_dict() == saved


def test_clipart_removes_every_category_word_with_the_same_mechanism():
    assert clean_keywords("frog;computer mouse;Animals;green", "animals", "computer") == "frog mouse green"


@pytest.mark.skipif(clipart_dir(None) is None, reason="no local clipart copy")
def test_clipart_keywords_name_no_category_at_all():
    frame = Clipart(None, min_per_class=20, drop_category_words=True).load().frame
    found = WordRemover(label_words(*frame["category"].unique())).found
    assert not any(found(k) for k in frame["keywords"])


def test_the_option_without_class_names_stops_with_one_line():
    t = TextTransform("wordpiece", 60, 1, 8, True, 0.0, drop_label_words=True)
    with pytest.raises(DataError, match="classification or multi-label head"):
        t.fit(["a hand-written two"])
