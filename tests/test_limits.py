"""Upper bounds on recipe sizes and on arrays and videos, each a one-line error naming the key or the input."""

from __future__ import annotations

import io

import numpy as np
import pytest

from polymodal import api
from polymodal.errors import ConfigError, DataError

# (modality, encoder, where the key sits, key, a value past its bound)
TOO_BIG = [
    ("image", "image_cnn", "preprocessing", "size", 4096),
    ("image", "image_cnn", "preprocessing", "max_pixels", 10**9),
    ("image", "image_cnn", "encoder", "width", 1024),
    ("image", "image_cnn", "encoder", "out_dim", 100_000),
    ("image", "image_vit", "encoder", "heads", 128),
    ("image", "image_vit", "encoder", "patch", 128),
    ("image", "image_resnet", "encoder", "width", 512),
    ("video", "video_cnn", "preprocessing", "num_frames", 10_000),
    ("video", "video_cnn", "preprocessing", "size", 2048),
    ("timeseries", "ts_cnn", "preprocessing", "max_length", 10**6),
    ("timeseries", "ts_cnn", "preprocessing", "resample_to", 10**6),
    ("timeseries", "ts_cnn", "encoder", "kernel", 1000),
    ("timeseries", "ts_rnn", "encoder", "hidden", 10**5),
    ("timeseries", "ts_transformer", "encoder", "width", 10**5),
    ("text", "text_bag", "preprocessing", "vocab_size", 10**7),
    ("text", "text_bag", "preprocessing", "max_length", 10**5),
    ("text", "text_bilstm", "encoder", "embed_dim", 10**5),
    ("text", "text_transformer", "encoder", "layers", 100),
    ("tabular", "tabular_mlp", "encoder", "hidden", 10**5),
    ("audio", "audio_transformer", "encoder", "heads", 1000),
    ("image", "image_cnn", "fusion", "dim", 10**5),
    ("image", "image_cnn", "head", "hidden", 10**5),
]


def recipe(tmp_path, modality: str, encoder: str, where: str, key: str, value: int) -> dict:
    inp = {"name": "a", "modality": modality, "encoder": {"name": encoder}}
    if modality == "tabular":
        inp["columns"] = ["x", "z"]
    out = {"name": "big", "data": {"table": str(tmp_path / "t.csv")}, "inputs": [inp]}
    if where in ("preprocessing", "encoder"):
        inp.setdefault(where, {})[key] = value
    else:
        out[where] = {"name": "gated" if where == "fusion" else "classification", key: value}
    return out


@pytest.mark.parametrize(("modality", "encoder", "where", "key", "value"), TOO_BIG)
def test_every_size_has_an_upper_bound_named_in_one_line(tmp_path, modality, encoder, where, key, value):
    with pytest.raises(ConfigError) as e:
        api.load_recipe(recipe(tmp_path, modality, encoder, where, key, value))
    msg = str(e.value)
    assert "\n" not in msg
    assert (f"inputs.a.{where}.{key}" if where in ("preprocessing", "encoder") else f"{where}.{key}") in msg
    # ... and the value just under the bound's neighbourhood that recipes use is still accepted
    api.load_recipe(recipe(tmp_path, modality, encoder, where, key, 8 if key != "vocab_size" else 300))


def test_shipped_recipes_stay_within_the_bounds():
    from polymodal.schema import builtin_names

    for name in builtin_names():
        api.load_recipe(name)


def test_image_arrays_are_capped_finite_and_0_to_255():
    from polymodal.data.modalities.image import ImageTransform

    t = ImageTransform(28, 1, 0.5, 0.5, 40_000_000)
    assert t(np.full((28, 28), 255.0)).shape == (1, 28, 28)  # float 0-255 and uint8 keep working
    assert t(np.zeros((28, 28), np.uint8)).shape == (1, 28, 28)
    for bad, words in [
        (np.full((28, 28), np.nan), "not a finite number"),
        (np.full((28, 28), 1e308), "not a finite number"),
        (np.full((28, 28), -3.0), "outside 0-255"),
        (np.zeros((5000, 5000), np.uint8), "over polymodal's limit of 16,777,216"),
    ]:
        with pytest.raises(DataError, match=words) as e:
            t(bad)
        assert "\n" not in str(e.value)


def test_series_cells_are_capped_before_numpy_copies_them(monkeypatch):
    from polymodal.data import arrays
    from polymodal.data.modalities import timeseries

    monkeypatch.setattr(timeseries, "MAX_SERIES_ELEMENTS", 100)
    t = timeseries.TimeSeriesTransform(128, 0, "channel", "raise", 0.0, 0.0, 0.0)
    assert t.values([[1.0, 2.0]] * 50).shape == (50, 2)
    with pytest.raises(DataError, match=r"series cell has shape \(51, 2\) \(102 elements\), over .* limit of 100"):
        t.values([[1.0, 2.0]] * 51)
    assert arrays.list_shape([[1, 2, 3]] * 4) == (4, 3)


def test_server_json_arrays_refuse_overflow_and_size():
    from polymodal.serve.inputs import MAX_ELEMENTS, Uploads, as_array, to_value
    from polymodal.serve.limits import PayloadTooLarge

    with pytest.raises(DataError, match=r"input 'x' holds 1e\+308 at index \[1\]"):
        as_array("x", [1.0, 1e308])
    with pytest.raises(PayloadTooLarge, match="over 16,777,216 numbers"):
        as_array("img", [[0] * 5000] * 5000, MAX_ELEMENTS["image"])
    with pytest.raises(DataError, match="outside 0-255"):
        to_value("img", "image", [[0, 300], [1, 2]], Uploads(), 40_000_000)
    buf = io.BytesIO()
    np.save(buf, np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="holds object values, not numbers"):
        to_value("s", "timeseries", (buf.getvalue(), "s.npy"), Uploads(), 40_000_000)


def test_video_reads_only_the_first_max_frames_and_checks_frame_size(monkeypatch, tmp_path):
    from polymodal.data.modalities import video

    frames = np.zeros((12, 32, 32, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(12)[:, None, None] * 20  # each frame a different red
    path = tmp_path / "v.mp4"
    video.write_mp4(path, frames, np.zeros(800, np.float32), 8000)
    monkeypatch.setattr(video, "MAX_FRAMES", 4)
    t = video.VideoTransform(2, 8, 3, 0.0, 1.0)
    assert len(t.frames(path)) == 4
    assert t(str(path))[-1, 0].mean() < 0.3  # the last pick is frame 3 (red 60), not frame 11 (red 220)
    monkeypatch.setattr(video, "MAX_FRAME_PIXELS", 32 * 32 - 1)
    with pytest.raises(DataError, match=r"v.mp4 has 32×32 frames, over polymodal's limit of 1,023 pixels"):
        t(str(path))
