"""Rows are seeded one by one only when some input's augmentation is on (a seed per row costs ~0.6 ms)."""

from __future__ import annotations

import dataclasses

import torch
from conftest import tiny_recipe

from polymodal import api
from polymodal.data.dataset import build_data
from polymodal.data.modalities.audio import AudioPreprocessing
from polymodal.data.modalities.base import Transform
from polymodal.data.modalities.image import ImagePreprocessing
from polymodal.registry import MODALITIES
from polymodal.training.steps import SupervisedStep


def test_transforms_say_whether_they_augment():
    assert not MODALITIES.build("image", ImagePreprocessing()).augments
    assert MODALITIES.build("image", ImagePreprocessing(hflip=0.5)).augments
    assert not MODALITIES.build("audio", AudioPreprocessing()).augments
    assert MODALITIES.build("audio", AudioPreprocessing(time_mask=5)).augments
    assert MODALITIES.build("audio", AudioPreprocessing(gain_db=3)).augments

    class Plain(Transform):
        pass

    class Custom(Transform):
        def augment(self, x: torch.Tensor) -> torch.Tensor:
            return x + torch.rand(())

    assert not Plain().augments and Custom().augments  # an unknown override counts as drawing


def test_feed_seeds_rows_only_when_something_augments(manifest):
    recipe = api.load_recipe(tiny_recipe(manifest))
    for hflip, seeded in ((0.0, False), (0.5, True)):
        inputs = [
            dataclasses.replace(s, preprocessing=dataclasses.replace(s.preprocessing, hflip=hflip))
            if s.modality == "image"
            else s
            for s in recipe.inputs
        ]
        data = build_data(dataclasses.replace(recipe, inputs=inputs))
        train, val = data.splits["train"], data.splits["val"]
        assert train.augments is seeded and not val.augments
        model = torch.nn.Linear(1, 1)
        step = SupervisedStep(model, recipe.trainer, train, val, seed=0)
        units = step.units(0)
        step.feed(units)  # sets this epoch's batches on the loader's sampler
        first = step.batches.batches[0][0]
        assert isinstance(first, tuple) is seeded
