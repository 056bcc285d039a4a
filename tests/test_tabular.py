"""Tabular: standardisation fitted on train, unseen/missing categories -> 0, NaN policies, errors;
and a tabular input trained end to end from a CSV manifest through `columns:`."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from polymodal import api
from polymodal.data.modalities.tabular import TabularTransform
from polymodal.errors import DataError

ROWS = [
    {"age": 20.0, "height": 1.6, "city": "Paris"},
    {"age": 40.0, "height": 1.8, "city": "Rome"},
    {"age": 30.0, "height": math.nan, "city": "Paris"},
]


def fitted(**kw) -> TabularTransform:
    t = TabularTransform(**{"categorical": ["city"], "nan_policy": "mean", **kw})
    t.fit(ROWS)
    return t


def test_standardise_and_index():
    t = fitted()
    assert t.numeric == ["age", "height"] and t.vocab == {"city": ["Paris", "Rome"]}
    x = t({"age": 30.0, "height": 1.7, "city": "Rome"})
    assert x.tolist() == pytest.approx([0.0, 0.0, 2.0], abs=1e-5)
    assert t.context() == {"num_numeric": 2, "cardinalities": [3]}


def test_unseen_and_missing_categories_map_to_zero():
    t = fitted()
    assert t({"age": 1, "height": 1, "city": "Tokyo"})[-1] == 0
    assert t({"age": 1, "height": 1, "city": ""})[-1] == 0


def test_nan_policies():
    assert fitted()({"age": math.nan, "height": 1.7, "city": "Rome"})[0] == pytest.approx(0.0, abs=1e-5)  # the mean
    assert fitted(nan_policy="zero")({"age": math.nan, "height": 1.7, "city": "Rome"})[0] == pytest.approx(
        -3.0 / 0.8165, abs=1e-3
    )
    # An empty cell under nan_policy: raise is refused by the row's own preprocessing (so the table's row is
    # named, or the row skipped with on_error: skip), not by fit(), which leaves it out of the statistics.
    strict = fitted(nan_policy="raise")
    with pytest.raises(DataError, match="column 'height' is empty"):
        strict({"age": 30.0, "height": math.nan, "city": "Rome"})
    with pytest.raises(DataError, match="not a number"):
        fitted()({"age": "old", "height": 1.7, "city": "Rome"})
    with pytest.raises(DataError, match="lacks tabular columns"):
        fitted()({"age": 3})


def test_state_round_trip():
    t = fitted()
    u = TabularTransform(["city"], "mean")
    u.load_state_dict(t.state_dict())
    row = {"age": 33.0, "height": 1.75, "city": "Paris"}
    assert torch.equal(t(row), u(row))


def test_tabular_input_trains_from_a_csv(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["x1,x2,colour,label"]
    for i in range(240):
        label = i % 3
        colour = ["red", "green", "blue"][label] if rng.random() < 0.7 else "grey"
        lines.append(f"{rng.normal(label, 0.7):.3f},{rng.normal(size=None):.3f},{colour},c{label}")
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    recipe = {
        "name": "tab",
        "data": {"table": str(tmp_path / "t.csv")},
        "inputs": [
            {
                "name": "row",
                "modality": "tabular",
                "columns": ["x1", "x2", "colour"],
                "preprocessing": {"categorical": ["colour"]},
                "encoder": "tabular_mlp",
            }
        ],
        "trainer": {"epochs": 15, "batch_size": 16, "lr": 0.01, "checkpoint_every": 0},
    }
    res = api.train(recipe, tmp_path / "run")
    assert res.test["accuracy"] > 0.7
    out = api.load(tmp_path / "run").predict(row={"x1": 2.0, "x2": 0.0, "colour": "blue"})
    assert out["label"] == "c2"
