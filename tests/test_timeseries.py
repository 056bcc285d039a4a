"""Sensor time-series: the .ts format, file readers, NaN policies, pad + mask, fitted normalisation,
timestamp alignment, and the UEA datasets when a local copy exists."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from polymodal.data.datasets.uea import BasicMotions, JapaneseVowels, uea_dir
from polymodal.data.formats.ts_format import read_ts
from polymodal.data.modalities.timeseries import TimeSeriesTransform
from polymodal.errors import DataError

TS = """# a comment
@problemName Toy
@classLabel true up down
@data
1,2,3:4,5,6:up
1,2:3,4:down
1,?,3,4:5,6,7,8:up
"""


def ts(**kw) -> TimeSeriesTransform:
    args = dict(max_length=8, resample_to=0, normalize="none", nan_policy="raise", clock_hz=0.0, jitter=0.0, scale=0.0)
    return TimeSeriesTransform(**{**args, **kw})


def test_ts_reader_variable_length_and_missing(tmp_path):
    p = tmp_path / "toy.ts"
    p.write_text(TS)
    series, labels, header = read_ts(p)
    assert labels == ["up", "down", "up"] and header["problemname"] == "Toy"
    assert [s.shape for s in series] == [(3, 2), (2, 2), (4, 2)]
    assert np.isnan(series[2][1, 0]) and series[0][2, 1] == 6


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("@data\n1,2:3,4:a\n1,2:b\n", r"toy.ts:3: 1 dimensions, but earlier cases have 2"),
        ("@data\n1,x:3,4:a\n", r"toy.ts:2: not a number"),
        ("1,2:a\n", r"toy.ts:1: expected an @ header"),
        ("@problemName x\n", "no @data line"),
    ],
)
def test_ts_reader_names_the_bad_line(tmp_path, text, match):
    p = tmp_path / "toy.ts"
    p.write_text(text)
    with pytest.raises(DataError, match=match):
        read_ts(p)


def test_pad_and_mask_channel():
    x = ts()(np.arange(10, dtype=float).reshape(5, 2))
    assert x.shape == (8, 3)
    assert x[:, -1].tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    assert x[5:, :2].abs().sum() == 0
    long = ts()(np.ones((20, 2)))
    assert long.shape == (8, 3) and long[:, -1].all()


def test_npy_and_csv_files(tmp_path):
    arr = np.random.default_rng(0).normal(size=(6, 3))
    np.save(tmp_path / "s.npy", arr)
    pd.DataFrame(arr, columns=["a", "b", "c"]).to_csv(tmp_path / "s.csv", index=False)
    a, b = ts()(str(tmp_path / "s.npy")), ts()(str(tmp_path / "s.csv"))
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a[:6, :3], torch.tensor(arr, dtype=torch.float32))


def test_nan_policies_name_file_and_row(tmp_path):
    arr = np.ones((5, 2))
    arr[3, 1] = np.nan
    np.save(tmp_path / "n.npy", arr)
    with pytest.raises(DataError, match=r"n.npy has NaN/inf at row 3"):
        ts()(str(tmp_path / "n.npy"))
    assert ts(nan_policy="zero")(arr)[3, 1] == 0
    inf = np.arange(10, dtype=float).reshape(5, 2)
    inf[2, 0] = np.inf
    assert ts(nan_policy="interpolate")(inf)[2, 0] == pytest.approx(4.0)


def test_non_numeric_csv_and_missing_file(tmp_path):
    (tmp_path / "w.csv").write_text("a,b\n1,x\n2,y\n")
    with pytest.raises(DataError, match="non-numeric"):
        ts()(str(tmp_path / "w.csv"))
    with pytest.raises(DataError, match="not found"):
        ts()(str(tmp_path / "none.npy"))


def test_normalisation_is_fitted_on_train_and_restored():
    rng = np.random.default_rng(0)
    train = [rng.normal(5.0, 2.0, size=(50, 2)) for _ in range(20)]
    t = ts(normalize="channel", max_length=50)
    t.fit(train)
    z = torch.cat([t(a)[:, :2] for a in train])
    assert z.mean().abs() < 0.05 and (z.std() - 1).abs() < 0.05
    other = ts(normalize="channel", max_length=50)
    other.load_state_dict(t.state_dict())
    assert torch.equal(other(train[0]), t(train[0])) and t.context() == {"channels": 2}
    with pytest.raises(DataError, match="3 channels but this input was fitted on 2"):
        t(np.ones((4, 3)))


def test_streams_are_aligned_by_timestamp(tmp_path):
    # accelerometer at 10 Hz from t=0, gyroscope at 5 Hz from t=0.4: a common 10 Hz clock on the overlap
    t1 = np.arange(0, 3.0, 0.1)
    t2 = np.arange(0.4, 3.0, 0.2)
    pd.DataFrame({"timestamp": t1, "ax": t1 * 10}).to_csv(tmp_path / "acc.csv", index=False)
    pd.DataFrame({"timestamp": t2, "gx": -t2}).to_csv(tmp_path / "gyro.csv", index=False)
    x = ts(max_length=64)({"acc": str(tmp_path / "acc.csv"), "gyro": str(tmp_path / "gyro.csv")})
    n = int(x[:, -1].sum())
    assert n == len(np.arange(0.4, 2.8 + 1e-9, 0.1))
    assert x[0, :2].tolist() == pytest.approx([4.0, -0.4], abs=1e-5)  # both streams at t = 0.4
    assert x[n - 1, :2].tolist() == pytest.approx([28.0, -2.8], abs=1e-4)


def test_augment_keeps_padding_zero():
    torch.manual_seed(0)
    x = ts(jitter=0.1, scale=0.1)(np.ones((5, 2)))
    y = ts(jitter=0.1, scale=0.1).augment(x)
    assert not torch.equal(x, y) and y[5:].abs().sum() == 0 and torch.equal(y[:, -1], x[:, -1])


@pytest.mark.skipif(uea_dir("BasicMotions", None) is None, reason="no local UEA copy")
def test_uea_datasets_load_official_splits():
    bm = BasicMotions(None).load().frame
    assert len(bm) == 80 and (bm["split"] == "test").sum() == 40 and bm["accel"][0].shape == (100, 3)
    assert set(bm["label"]) == {"Standing", "Running", "Walking", "Badminton"}
    jv = JapaneseVowels(None).load().frame
    assert len(jv) == 640 and jv["series"][0].shape[1] == 12 and jv["label"].nunique() == 9


@pytest.mark.skipif(uea_dir("BasicMotions", None) is None, reason="no local UEA copy")
def test_basicmotions_recipe_trains_and_predicts(tmp_path):
    import json

    from polymodal import api
    from polymodal.api import load_recipe

    recipe = load_recipe(
        "basicmotions", ["trainer.epochs=4", "inputs.accel.encoder.width=8", "inputs.gyro.encoder.width=8"]
    )
    res = api.train(recipe, tmp_path / "bm")
    assert res.test["n"] == 40
    states = json.loads((tmp_path / "bm" / "transforms.json").read_text())
    assert len(states["accel"]["mean"]) == 3 and states["gyro"]["channels"] == 3
    case = BasicMotions(None).load().frame.iloc[0]
    out = api.load(tmp_path / "bm").predict(accel=case["accel"], gyro=case["gyro"])
    assert out["label"] in {"Standing", "Running", "Walking", "Badminton"}


def test_training_windows_are_random_valid_crops():
    torch.manual_seed(0)
    t = ts(max_length=20, window=5)
    x = t(np.arange(15, dtype=float)[:, None])
    starts = set()
    for _ in range(30):
        w = t.augment(x)
        assert w[:, -1].tolist() == [1.0] * 5 + [0.0] * 15
        assert (np.diff(w[:5, 0].numpy()) == 1).all()  # consecutive steps
        starts.add(float(w[0, 0]))
    assert len(starts) > 3 and max(starts) <= 10
