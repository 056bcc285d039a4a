"""Deterministic stratified splits and official split columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polymodal.data.table import Table, assign_splits, stratified_split
from polymodal.errors import DataError

LABELS = np.repeat(["a", "b", "c"], [100, 50, 20])


def test_same_seed_same_split_other_seed_other_split():
    a = stratified_split(LABELS, 0.1, 0.2, seed=3)
    assert (a == stratified_split(LABELS, 0.1, 0.2, seed=3)).all()
    assert (a != stratified_split(LABELS, 0.1, 0.2, seed=4)).any()


def test_class_proportions_and_fractions_hold():
    s = stratified_split(LABELS, 0.1, 0.2, seed=0)
    for cls, n in (("a", 100), ("b", 50), ("c", 20)):
        part = s[cls == LABELS]
        assert (part == "test").sum() == round(n * 0.2)
        assert (part == "val").sum() == round(n * 0.1)
        assert (part == "train").sum() == n - round(n * 0.2) - round(n * 0.1)


def test_split_column_is_used_and_val_is_carved_from_train():
    frame = pd.DataFrame({"label": LABELS, "split": np.where(np.arange(170) % 5 == 0, "test", "train")})
    s = assign_splits(Table(frame, "label", split="split"), 0.1, 0.2, seed=0)
    assert (s[frame["split"] == "test"] == "test").all()
    assert {"train", "val"} == set(s[frame["split"] == "train"])


def test_bad_split_values_are_named():
    frame = pd.DataFrame({"label": ["a", "b"], "split": ["train", "holdout"]})
    with pytest.raises(DataError, match="holdout"):
        assign_splits(Table(frame, "label", split="split"), 0.1, 0.1, 0)


def test_grouped_split_keeps_every_group_in_one_split():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 60, size=400)  # 60 groups, several rows each
    labels = np.array([f"c{g % 3}" for g in groups])  # a group's rows share a label
    split = stratified_split(labels, 0.2, 0.2, seed=1, groups=groups)
    for g in np.unique(groups):
        assert len(set(split[groups == g])) == 1
    ungrouped = stratified_split(labels, 0.2, 0.2, seed=1)
    assert any(len(set(ungrouped[groups == g])) > 1 for g in np.unique(groups))  # without groups they straddle
    assert set(split) == {"train", "val", "test"}


def test_unstratified_split_reaches_labels_seen_once():
    # Caption-like targets: 300 distinct texts and one frequent one. Stratifying per value would leave every
    # distinct text in training and test only on the frequent one.
    frame = pd.DataFrame({"label": [f"title {i}" for i in range(300)] + ["common"] * 100})
    table = Table(frame, "label")
    stratified = assign_splits(table, 0.1, 0.2, seed=0)
    assert set(frame["label"][stratified == "test"]) == {"common"}
    plain = assign_splits(table, 0.1, 0.2, seed=0, stratify=False)
    test = frame["label"][plain == "test"]
    assert len(test) == 80 and (test != "common").sum() > 40
