"""DP-SGD: per-example clipping against a manual computation, the RDP accountant against known values,
Poisson batches, and a private run on real images and audio."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import mnist_digits, tiny_recipe
from torch import nn

from polymodal import api
from polymodal.api import load_recipe
from polymodal.config import parse_recipe
from polymodal.errors import ConfigError
from polymodal.privacy import PrivacyConfig, epsilon, noise_for_epsilon
from polymodal.privacy.accountant import ORDERS, rdp
from polymodal.privacy.dpsgd import DPSGD, poisson_batches


class TinyModel(nn.Module):
    """Flattened 28×28 images -> Linear -> logits, with the trainer's ``forward(inputs, present)``/``loss``."""

    def __init__(self, norm: nn.Module | None = None) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), norm or nn.Identity(), nn.Linear(784, 3))

    def forward(self, inputs: dict[str, torch.Tensor], present: object = None) -> torch.Tensor:
        return self.net(inputs["image"])

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits, y)


def real_batch() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    x = np.concatenate([mnist_digits(d, 4) for d in range(3)]).astype(np.float32) / 255.0  # 12 real digits
    return {"image": torch.from_numpy(x)}, torch.arange(3).repeat_interleave(4)


def test_clipping_bounds_each_example_and_matches_manual_per_example_gradients() -> None:
    torch.manual_seed(0)
    model = TinyModel()
    inputs, y = real_batch()
    c = 0.05  # below every example's gradient norm, so clipping acts on all of them
    dp = DPSGD(
        model, PrivacyConfig(noise_multiplier=0.0, max_grad_norm=c, delta=1e-3), n=48, batch_size=12, steps=1, seed=0
    )
    dp.backward(inputs, None, y)
    got = torch.cat([p.grad.flatten() for p in model.parameters()])

    manual, norms = torch.zeros_like(got), []
    for i in range(len(y)):  # one example at a time, the textbook way
        model.zero_grad()
        model.loss(model({"image": inputs["image"][i : i + 1]}), y[i : i + 1]).backward()
        g = torch.cat([p.grad.flatten() for p in model.parameters()])
        norms.append(float(g.norm()))
        manual += g * min(1.0, c / float(g.norm()))
    manual /= 12  # the expected batch size q·N
    assert min(norms) > c
    torch.testing.assert_close(got, manual, rtol=1e-4, atol=1e-7)
    # Each example moved the sum by at most C: the summed gradient's norm is at most B·C.
    assert float(got.norm()) * 12 <= len(y) * c + 1e-6


def test_noise_has_the_configured_scale() -> None:
    torch.manual_seed(0)
    model = TinyModel()
    inputs, y = real_batch()
    dp = DPSGD(
        model, PrivacyConfig(noise_multiplier=2.0, max_grad_norm=1.0, delta=1e-3), n=48, batch_size=12, steps=1, seed=0
    )
    dp.backward({"image": inputs["image"][:0]}, None, y[:0])  # an empty Poisson batch: noise only
    noise = model.net[2].weight.grad * 12  # undo the division by q·N
    assert abs(float(noise.std()) - 2.0) < 0.1


def test_batchnorm_is_refused_with_one_line() -> None:
    with pytest.raises(ConfigError, match="BatchNorm") as exc:
        DPSGD(
            TinyModel(nn.BatchNorm1d(784)), PrivacyConfig(noise_multiplier=1.0), n=1000, batch_size=10, steps=1, seed=0
        )
    assert "\n" not in str(exc.value)


def test_epsilon_matches_known_value_and_falls_with_noise() -> None:
    # MNIST setting of Abadi et al. 2016: N = 60,000, batch 256, σ = 1.1, 60 epochs, δ = 1e-5. Opacus 1.6's
    # RDP analysis over the same integer orders gives 2.59698 (its default, partly fractional orders 2.59656).
    q, steps = 256 / 60000, int(60 * 60000 / 256)
    assert epsilon(q, 1.1, steps, 1e-5) == pytest.approx(2.59698, abs=1e-4)
    eps = [epsilon(q, s, steps, 1e-5) for s in (0.7, 0.9, 1.1, 1.5, 2.0)]
    assert all(a > b for a, b in zip(eps, eps[1:], strict=False))
    # Without subsampling the RDP of the Gaussian mechanism is exactly α / (2σ²) per step.
    np.testing.assert_allclose(rdp(1.0, 2.0, 3, (2, 8)), [3 * 2 / 8, 3 * 8 / 8])
    # Calibration is the inverse: the noise found for ε = 3 gives ε just below 3.
    sigma = noise_for_epsilon(3.0, q, steps, 1e-5)
    assert 2.99 < epsilon(q, sigma, steps, 1e-5) <= 3.0


def test_accountant_equals_opacus() -> None:
    analysis = pytest.importorskip("opacus.accountants.analysis.rdp")
    for q, sigma, steps in [(0.01, 1.0, 1000), (0.1, 0.8, 50), (0.25, 3.0, 240)]:
        theirs = analysis.compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=list(ORDERS))
        np.testing.assert_allclose(rdp(q, sigma, steps), theirs, rtol=1e-9)
        eps, _ = analysis.get_privacy_spent(orders=list(ORDERS), rdp=theirs, delta=1e-5)
        assert epsilon(q, sigma, steps, 1e-5) == pytest.approx(float(eps), rel=1e-9)


def test_poisson_batches_are_seeded_and_sample_at_rate_q() -> None:
    a = poisson_batches(2000, 0.05, 20, seed=3, epoch=1)
    assert a == poisson_batches(2000, 0.05, 20, seed=3, epoch=1)
    assert a != poisson_batches(2000, 0.05, 20, seed=3, epoch=2)
    sizes = [len(b) for b in a]
    assert len(set(sizes)) > 1 and abs(np.mean(sizes) - 100) < 10


def test_privacy_config_errors_are_one_line(manifest: Path) -> None:
    for bad, match in [
        ({"noise_multiplier": 1.0, "target_epsilon": 3.0}, "exactly one"),
        ({}, "exactly one"),
        ({"noise_multiplier": -1.0}, "greater than or equal to 0"),
        ({"noise_multiplier": 1.0, "delta": 0.0}, "greater than 0"),
        ({"noise_multiplier": 1.0, "clip": 1.0}, "unknown key 'clip'"),
    ]:
        with pytest.raises(ConfigError, match=match) as exc:
            parse_recipe(tiny_recipe(manifest, privacy=bad))
        assert "\n" not in str(exc.value)


def test_private_run_reports_epsilon(manifest: Path, tmp_path: Path) -> None:
    raw = tiny_recipe(manifest, epochs=2, privacy={"noise_multiplier": 1.0, "delta": 1e-3})
    for spec in raw["inputs"]:
        spec["encoder"]["norm"] = "group"
    res = api.train(raw, tmp_path / "dp")
    record = json.loads((res.run_dir / "metrics.json").read_text())["privacy"]
    n_train = len(res.data.splits["train"])
    q = 8 / n_train
    steps = 2 * math.ceil(n_train / 8)
    assert record["steps"] == steps and record["sample_rate"] == pytest.approx(q)
    assert record["epsilon"] == pytest.approx(epsilon(q, 1.0, steps, 1e-3))
    rows = [json.loads(line) for line in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert 0 < rows[0]["epsilon"] < rows[1]["epsilon"] == pytest.approx(record["epsilon"])
    assert load_recipe(res.run_dir / "recipe.yaml").trainer.privacy.noise_multiplier == 1.0
    # A delta that is not below 1/N is refused before training.
    raw["trainer"]["privacy"]["delta"] = 0.5
    with pytest.raises(ConfigError, match="below 1/N"):
        api.train(raw, tmp_path / "dp-bad")
    # BatchNorm encoders are refused with a pointer to norm: group.
    with pytest.raises(ConfigError, match="norm: group"):
        api.train(tiny_recipe(manifest, privacy={"noise_multiplier": 1.0, "delta": 1e-3}), tmp_path / "dp-bn")
