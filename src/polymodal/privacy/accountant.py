"""Rényi-DP accounting for DP-SGD: the Poisson-subsampled Gaussian mechanism composed over steps.

One step samples every training example independently with probability ``q`` (Poisson sampling), sums the
clipped per-example gradients and adds N(0, (σ·C)²) noise. Its RDP at integer order α is (Mironov, Talwar &
Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian Mechanism", Sec. 3.3)

    ε_α = log( Σ_{k=0..α} C(α, k) (1 - q)^(α-k) q^k exp((k² - k) / (2σ²)) ) / (α - 1),

RDP composes additively over steps, and (ε, δ)-DP follows from the best order with the conversion of Balle
et al. 2020 (Thm. 21), the one Opacus uses. Only integer orders are used (Opacus also tries fractional
ones), so ε here can be slightly larger than Opacus's: never smaller, i.e. never optimistic.
"""

from __future__ import annotations

import math

import numpy as np

ORDERS: tuple[int, ...] = tuple(range(2, 257))


def _log_a(q: float, sigma: float, orders: np.ndarray) -> np.ndarray:
    """log Σ_k C(α,k) (1-q)^(α-k) q^k exp((k²-k)/(2σ²)) for every order α at once, in log space (the terms
    overflow float64 quickly); a row holds k = 0..max α, and k > α is masked out. (scipy is imported here: at
    module level it slowed every ``polymodal`` command, which import this module through the server.)"""
    from scipy.special import gammaln, logsumexp

    a = orders[:, None]  # (A, 1)
    k = np.arange(orders.max() + 1, dtype=np.float64)[None, :]  # (1, K)
    valid = k <= a
    kk = np.where(valid, k, 0.0)
    log_binom = gammaln(a + 1) - gammaln(kk + 1) - gammaln(a - kk + 1)
    terms = log_binom + kk * math.log(q) + (a - kk) * math.log1p(-q) + (kk * kk - kk) / (2 * sigma**2)
    return logsumexp(np.where(valid, terms, -np.inf), axis=1)


def rdp(q: float, sigma: float, steps: int, orders: tuple[int, ...] = ORDERS) -> np.ndarray:
    """RDP ε_α of ``steps`` Poisson-subsampled Gaussian steps, one value per order α."""
    alphas = np.asarray(orders, dtype=np.float64)
    if sigma <= 0:
        return np.full(len(alphas), math.inf)
    if q == 0 or steps == 0:
        return np.zeros(len(alphas))
    if q == 1:  # no subsampling: the plain Gaussian mechanism
        return steps * alphas / (2 * sigma**2)
    return steps * _log_a(q, sigma, alphas) / (alphas - 1)


def epsilon(q: float, sigma: float, steps: int, delta: float, orders: tuple[int, ...] = ORDERS) -> float:
    """The (ε, δ)-DP guarantee after ``steps`` steps at sampling rate ``q`` and noise multiplier ``sigma``."""
    if steps == 0 or q == 0:
        return 0.0
    alphas = np.asarray(orders, dtype=np.float64)
    eps = rdp(q, sigma, steps, orders) - (math.log(delta) + np.log(alphas)) / (alphas - 1) + np.log1p(-1 / alphas)
    return float(max(0.0, np.nanmin(eps)))


def noise_for_epsilon(target: float, q: float, steps: int, delta: float) -> float:
    """The smallest noise multiplier σ (to 0.1 %) whose guarantee after ``steps`` steps is at most ``target``."""
    lo, hi = 0.0, 1.0
    while epsilon(q, hi, steps, delta) > target:
        lo, hi = hi, hi * 2
        if hi > 1e4:
            raise ValueError(f"no noise multiplier reaches epsilon {target}; raise the target or train fewer steps")
    while hi - lo > 1e-3 * hi:  # ε falls as σ grows: bisect
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if epsilon(q, mid, steps, delta) > target else (lo, mid)
    return hi
