"""Non-IID client shards: a Dirichlet(α) split of each class over the clients (Hsu, Qi & Brown 2019)."""

from __future__ import annotations

import numpy as np


def dirichlet_split(labels: np.ndarray, clients: int, alpha: float, seed: int) -> list[np.ndarray]:
    """Split example indices over ``clients`` so each class's share per client follows Dirichlet(α·1).

    Args:
        labels: (N,) class index per example.
        clients: Number of shards K.
        alpha: Concentration; small α gives few classes per client, large α approaches an IID split.
        seed: Seed of the class shuffles and the Dirichlet draws.

    Returns:
        K sorted index arrays that together hold every index of ``range(N)`` exactly once (a client may get
        none).
    """
    rng = np.random.default_rng(seed)
    shards: list[list[np.ndarray]] = [[] for _ in range(clients)]
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        share = rng.dirichlet(np.full(clients, alpha))
        cuts = np.round(np.cumsum(share)[:-1] * len(members)).astype(int)
        for k, part in enumerate(np.split(members, cuts)):
            shards[k].append(part)
    return [np.sort(np.concatenate(s)).astype(np.int64) for s in shards]


def label_histogram(labels: np.ndarray, shards: list[np.ndarray], classes: int) -> np.ndarray:
    """(K, C) count of each class on each client."""
    return np.stack([np.bincount(labels[s], minlength=classes) for s in shards])
