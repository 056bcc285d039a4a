"""Text: tokenizers fitted on training text (char, BPE, WordPiece), padding, empty cells, state round trip;
the clipart dataset and its label-leak cleaning."""

from __future__ import annotations

import math

import pytest
import torch

from polymodal.data.datasets.clipart import Clipart, category_words, clean_keywords, clipart_dir
from polymodal.data.modalities.text import PAD, UNK, TextTransform
from polymodal.errors import DataError

TRAIN = [
    "a green frog in the swamp",
    "frog frog toad",
    "the red car on the road",
    "car truck road",
    "green plant with leaves",
    "the plant and the frog",
] * 3


def text(kind: str, **kw) -> TextTransform:
    args = dict(tokenizer=kind, vocab_size=200, min_frequency=1, max_length=8, lowercase=True, token_dropout=0.0)
    return TextTransform(**{**args, **kw})


@pytest.mark.parametrize("kind", ["char", "bpe", "wordpiece"])
def test_fit_encode_and_round_trip(kind):
    t = text(kind)
    t.fit(TRAIN)
    ids = t("Green FROG")
    assert ids.shape == (8,) and ids.dtype == torch.long
    assert (ids[: (ids != PAD).sum()] != PAD).all()  # ids first, padding after
    assert t.context()["vocab_size"] > 2 and t.context()["pad_id"] == PAD
    again = text(kind)
    again.load_state_dict(t.state_dict())
    for s in ("green frog", "unseen zebra words", ""):
        assert torch.equal(again(s), t(s))


@pytest.mark.parametrize("cell", ["", None, math.nan])
def test_empty_and_missing_cells_are_all_padding(cell):
    t = text("wordpiece")
    t.fit(TRAIN)
    assert torch.equal(t(cell), torch.zeros(8, dtype=torch.long))


def test_truncation_unknown_and_numbers():
    t = text("char", max_length=5)
    t.fit(TRAIN)
    assert (t("the frog in the swamp") != PAD).all()
    assert t("§")[0] == UNK
    assert (t(123) != PAD).sum() == 3  # non-strings are written as text


def test_unfitted_transform_says_so():
    with pytest.raises(DataError, match="fitted"):
        text("bpe")("hello")


def test_token_dropout_only_on_real_tokens():
    torch.manual_seed(0)
    t = text("wordpiece", token_dropout=0.5, max_length=16)
    t.fit(TRAIN)
    x = t("green frog car road plant")
    y = t.augment(x)
    assert (y[x == PAD] == PAD).all() and (y == UNK).any() and text("char").augment(x) is x


def test_category_words_are_removed_from_keywords():
    assert category_words("signs_and_symbols") >= {"signs", "sign", "symbols", "symbol"}
    assert clean_keywords("frog;Animal;green;animals", "animals") == "frog green"


@pytest.mark.skipif(clipart_dir(None) is None, reason="no local clipart copy")
def test_clipart_dataset_loads_real_files():
    table = Clipart(None, min_per_class=20, drop_category_words=True).load()
    frame = table.frame
    assert frame["category"].nunique() == 19  # 22 categories, three with fewer than 20 images
    assert (table.base_dir / frame["image"].iloc[0]).is_file()
    pairs = zip(frame["keywords"], frame["category"], strict=True)
    leaks = sum(bool(category_words(c) & set(k.lower().split())) for k, c in pairs)
    assert leaks == 0


@pytest.mark.skipif(clipart_dir(None) is None, reason="no local clipart copy")
def test_clipart_copies_of_one_drawing_never_straddle_splits():
    import numpy as np

    from polymodal.data.table import assign_splits

    table = Clipart(None, 20, True).load()
    assert table.group == "drawing" and table.frame["drawing"].nunique() < len(table.frame)  # copies exist
    split = assign_splits(table, 0.1, 0.15, seed=0)
    per_drawing = table.frame.assign(split=split).groupby("drawing")["split"].nunique()
    assert int(per_drawing.max()) == 1
    assert set(np.unique(split)) == {"train", "val", "test"}
