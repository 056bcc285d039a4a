"""Blank images (failed renders: one flat colour): the clipart loader drops them, and the screening pass warns
when a table holds many of them."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from polymodal import api
from polymodal.data.datasets.clipart import Clipart, clipart_dir, is_blank


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def test_is_blank_tells_one_flat_colour_from_a_drawing():
    assert is_blank(png(np.full((64, 64, 3), 255)))
    assert is_blank(png(np.full((8, 8), 17)))
    drawing = np.full((64, 64, 3), 255)
    drawing[30, 30] = (0, 0, 0)  # one dark pixel is already a drawing
    assert not is_blank(png(drawing))


@pytest.mark.skipif(clipart_dir(None) is None, reason="no local clipart copy")
def test_clipart_drops_its_blank_renders_and_keeps_every_other_row():
    kept = Clipart(None, min_per_class=20, drop_category_words=True).load()
    every = Clipart(None, min_per_class=20, drop_category_words=True, drop_blank_images=False).load()
    root = kept.base_dir
    assert not any(is_blank((root / p).read_bytes()) for p in kept.frame["image"])
    blank = [is_blank((root / p).read_bytes()) for p in every.frame["image"]]
    assert sum(blank) > 100  # the shared copy has 125 white squares, most of them filed as 'special'
    assert len(kept.frame) == len(every.frame) - sum(blank)
    # With the blanks in, they are all one drawing group (one file content): the split puts them on one side.
    assert every.frame["drawing"][blank].nunique() == 1


def test_many_blank_images_in_a_table_get_one_warning(tmp_path, caplog):
    rng = np.random.default_rng(0)
    rows = ["image,label"]
    for i in range(40):
        pixels = np.full((16, 16), 255) if i % 4 == 0 else rng.integers(0, 255, (16, 16))
        (tmp_path / f"{i}.png").write_bytes(png(pixels))
        rows.append(f"{i}.png,{i % 2}")
    (tmp_path / "table.csv").write_text("\n".join(rows) + "\n")
    recipe = {
        "name": "blank",
        "data": {"table": str(tmp_path / "table.csv"), "disk_cache_dir": str(tmp_path / "cache")},
        "inputs": [{"name": "image", "modality": "image", "encoder": {"name": "image_cnn", "width": 4, "out_dim": 8}}],
        "trainer": {"epochs": 1, "batch_size": 16, "checkpoint_every": 0},
    }
    with caplog.at_level("WARNING"):
        api.train(recipe, tmp_path / "run")
    warned = [r.getMessage() for r in caplog.records if "have a constant 'image'" in r.getMessage()]
    assert warned and "train rows" in warned[0] and "drop those rows" in warned[0]
    assert len([w for w in warned if "train rows" in w]) == 1  # once per split, not once per row


def test_a_clipart_folder_of_only_blank_images_says_which_option_keeps_them(tmp_path):
    from polymodal.errors import DataError

    lines = ["image,title,keywords,description,category"]
    for i in range(4):
        (tmp_path / f"{i}.png").write_bytes(png(np.full((8, 8, 3), 255)))
        lines.append(f"{i}.png,t,k,d,c{i % 2}")
    (tmp_path / "captions.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="drop_blank_images: false"):
        Clipart(str(tmp_path), 1, True).load()
    assert len(Clipart(str(tmp_path), 1, True, drop_blank_images=False).load().frame) == 4
