"""The generated bad-input corpus (tests/bad_inputs/make.py): one test per class of bad file, each refused with
a one-line error naming the file within a few seconds, or (a non-UTF-8 table) read with the documented
replacement character and a warning."""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path

import pytest

from polymodal import api
from polymodal.errors import ConfigError, DataError, PolymodalError

LIMIT_S = 5.0  # each refusal is from a header or a count: milliseconds here, seconds on a loaded box


def make_module():
    """tests/bad_inputs/make.py, loaded from its path (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_bad_inputs", Path(__file__).parent / "bad_inputs" / "make.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return make_module().make(tmp_path_factory.mktemp("bad_inputs"))


def refused(read, path: Path, error: type[PolymodalError], *words: str) -> str:
    """Call ``read(str(path))``; assert a one-line ``error`` naming the file and ``words``, within LIMIT_S."""
    start = time.perf_counter()
    with pytest.raises(error) as e:
        read(str(path))
    assert time.perf_counter() - start < LIMIT_S
    msg = str(e.value)
    assert "\n" not in msg and path.name in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


def image(path: str):
    from polymodal.data.modalities.image import ImageTransform

    return ImageTransform(28, 1, 0.5, 0.5, 40_000_000)(path)


def audio(path: str):
    from polymodal.data.modalities.audio import AudioTransform

    return AudioTransform(8000, "logmel", 256, 80, 16, 13, 50, True)(path)


def video(path: str):
    from polymodal.data.modalities.video import VideoTransform

    return VideoTransform(8, 32, 1, 0.5, 0.5)(path)


def series(path: str):
    from polymodal.data.modalities.timeseries import TimeSeriesTransform

    return TimeSeriesTransform(128, 0, "channel", "raise", 0.0, 0.0, 0.0)(path)


def test_truncated_png(corpus):
    refused(image, corpus["truncated.png"], DataError, "truncated")


def test_truncated_jpeg(corpus):
    refused(image, corpus["truncated.jpg"], DataError, "truncated")


def test_png_bomb_header(corpus):
    refused(image, corpus["bomb.png"], DataError, "too large to decode safely", "max_pixels")


def test_one_by_100000_png(corpus):
    refused(image, corpus["strip.png"], DataError, "100000×1", "aspect ratio over 100:1")


def test_wav_declaring_1_hz(corpus):
    refused(audio, corpus["one_hz.wav"], DataError, "sample rate of 1 Hz", "re-encode")


def test_wav_cut_inside_its_data_chunk(corpus):
    refused(audio, corpus["cut_data.wav"], DataError, "truncated", "declares 8000 bytes")


def test_zero_length_wav(corpus):
    refused(audio, corpus["empty.wav"], DataError, "no samples")


def test_mp4_without_a_video_stream(corpus):
    refused(video, corpus["no_video.mp4"], DataError, "no video stream", "audio input")


def test_mp4_cut_in_half(corpus):
    refused(video, corpus["cut.mp4"], DataError, "cannot open video")


def test_mp4_of_extreme_aspect_ratio(corpus):
    refused(video, corpus["strip.mp4"], DataError, "400×2", "aspect ratio over 100:1")


def test_npy_declaring_a_huge_shape(corpus):
    refused(series, corpus["huge_shape.npy"], DataError, "(1000000, 1000000)", "limit of 4,194,304")


def test_npy_of_object_dtype(corpus):
    refused(series, corpus["object.npy"], DataError, "holds object values, not numbers")


def test_npy_with_inf_and_1e308(corpus):
    refused(series, corpus["overflow.npy"], DataError, "NaN/inf at row 3", "nan_policy")
    from polymodal.data.modalities.timeseries import TimeSeriesTransform

    zeroed = TimeSeriesTransform(128, 0, "none", "zero", 0.0, 0.0, 0.0).values(str(corpus["overflow.npy"]))
    assert zeroed[3, 2] == 0 and zeroed[6, 5] == 0  # 1e308 counts as bad too: it is inf in float32


def test_series_csv_with_text(corpus):
    refused(series, corpus["abc.csv"], DataError, "non-numeric columns")


def test_recipe_of_binary_bytes(corpus):
    refused(api.load_recipe, corpus["binary.yaml"], ConfigError, "not a text file")


def test_recipe_with_a_python_tag(corpus):
    refused(api.load_recipe, corpus["python_tag.yaml"], ConfigError, "python/object", "no !!python tags")


def test_billion_laughs_recipe(corpus):
    refused(api.load_recipe, corpus["billion_laughs.yaml"], ConfigError, "over 100,000 values")


def test_table_with_non_utf8_bytes(corpus, caplog):
    from polymodal.data.table import read_table

    with caplog.at_level("WARNING"):
        frame = read_table(corpus["latin1.csv"])
    assert frame["text"].tolist() == ["fine", "caf\ufffd au lait", "ok"]
    assert "line(s) 3 hold bytes that are not UTF-8" in caplog.text and "re-save the file as UTF-8" in caplog.text


def test_every_generated_file_has_a_test():
    tested = set(re.findall(r'corpus\["([\w.]+)"\]', Path(__file__).read_text()))
    assert set(make_module().FILES) == tested
