"""Metrics agree with scikit-learn, including a class that is never predicted."""

from __future__ import annotations

import numpy as np
import pytest

from polymodal.metrics.metrics import classification_metrics

sk = pytest.importorskip("sklearn.metrics")


def test_against_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    p = np.where(rng.random(300) < 0.6, y, rng.integers(0, 4, 300))  # class 4 only when correct
    p[p == 4] = 3  # ... and never predicted at all
    m = classification_metrics(y, p, 5)
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, p))
    for ours, avg in (
        ("macro_precision", sk.precision_score),
        ("macro_recall", sk.recall_score),
        ("macro_f1", sk.f1_score),
    ):
        assert m[ours] == pytest.approx(avg(y, p, average="macro", labels=range(5), zero_division=0))
    assert m["confusion_matrix"] == sk.confusion_matrix(y, p, labels=range(5)).tolist()
    assert m["per_class"]["4"]["precision"] == 0.0 and m["per_class"]["4"]["support"] == (y == 4).sum()
