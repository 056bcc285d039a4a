"""Missing modalities in the data: empty cells train, evaluate and predict; presence flags reach the model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_recipe

from polymodal import api
from polymodal.data.examples import collate, is_missing
from polymodal.errors import DataError
from polymodal.training.evaluator import Evaluator


@pytest.mark.parametrize("cell", [None, float("nan"), "", "   ", pd.NA, {"a": None, "b": math.nan}])
def test_missing_cells(cell):
    assert is_missing(cell)


@pytest.mark.parametrize("cell", ["x.png", 0, 0.0, np.zeros(3), {"a": None, "b": 1.0}])
def test_present_cells(cell):
    assert not is_missing(cell)


def test_collate_reports_presence_only_when_something_is_missing():
    x = {"a": torch.ones(2), "b": torch.ones(3)}
    full = [(x, {"a": True, "b": True}, torch.tensor(0))] * 2
    assert collate(full)[1] is None
    part = [(x, {"a": True, "b": False}, torch.tensor(0)), (x, {"a": True, "b": True}, torch.tensor(1))]
    present = collate(part)[1]
    assert present["b"].tolist() == [False, True] and present["a"].all()


def with_blank_cells(manifest, tmp_path, column: str, every: int):
    frame = pd.read_csv(manifest)
    frame[column] = [str(manifest.parent / v) for v in frame[column]]
    other = "image" if column == "audio" else "audio"
    frame[other] = [str(manifest.parent / v) for v in frame[other]]
    frame.loc[frame.index % every == 0, column] = ""
    path = tmp_path / "blanks.csv"
    frame.to_csv(path, index=False)
    return path


def test_training_with_empty_audio_cells(manifest, tmp_path):
    path = with_blank_cells(manifest, tmp_path, "audio", every=3)
    recipe = tiny_recipe(path, epochs=4)
    res = api.train(recipe, tmp_path / "run")
    assert res.test["accuracy"] > 0.5
    test = res.data.splits["test"]
    flags = [test[i][1]["audio"] for i in range(len(test))]
    assert 0 < flags.count(False) < len(flags)  # some test rows really lack audio
    assert Evaluator(res.model).evaluate(test)["accuracy"] == pytest.approx(res.test["accuracy"])


def test_an_input_empty_in_every_training_row_is_refused(manifest, tmp_path):
    path = with_blank_cells(manifest, tmp_path, "audio", every=1)
    with pytest.raises(DataError, match="missing in every train row"):
        api.train(tiny_recipe(path, epochs=1), tmp_path / "run")


def test_a_missing_text_input_gets_an_integer_placeholder():
    from polymodal.data.examples import ExampleDataset

    class Ids:
        def __call__(self, v: str) -> torch.Tensor:
            return torch.tensor([ord(c) for c in v[:4].ljust(4)], dtype=torch.long)

        def augment(self, x: torch.Tensor) -> torch.Tensor:
            return x

    ds = ExampleDataset({"title": ["abcd", ""]}, np.array([0, 1]), {"title": Ids()}, augment=True)
    ds.shapes, ds.dtypes = {"title": (4,)}, {"title": torch.long}
    x, present, _ = ds[1]
    assert not present["title"] and x["title"].dtype == torch.long and x["title"].sum() == 0
