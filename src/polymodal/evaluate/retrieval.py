"""Retrieval and zero-shot metrics over paired embeddings (CLIP-style evaluation)."""

from __future__ import annotations

import torch


def recall_at_k(sim: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[int, float]:
    """Recall@K for queries (rows) whose true match is the same-index column of ``sim`` (N, N).

    A query's rank is the number of candidates scoring strictly higher than its match; it is found within
    the top K when that rank is below K.
    """
    true = sim.diagonal().unsqueeze(1)  # (N, 1)
    rank = (sim > true).sum(1)  # (N,)
    return {k: float((rank < k).float().mean()) for k in ks}


def prototype_accuracy(queries: torch.Tensor, keys: torch.Tensor, labels: torch.Tensor, classes: int) -> float:
    """Classify each query (N, E) by the nearest class prototype of the other tower's embeddings ``keys``
    (N, E), both L2-normalised. A prototype is the mean of its class's keys, leaving out the query's own pair
    (row i of ``keys``), so a query is never matched through its own partner."""
    sums = torch.zeros(classes, keys.shape[1]).index_add_(0, labels, keys)  # (K, E)
    protos = sums.unsqueeze(0).repeat(len(queries), 1, 1)  # (N, K, E)
    protos[torch.arange(len(queries)), labels] -= keys
    protos = torch.nn.functional.normalize(protos, dim=-1)
    scores = torch.einsum("ne,nke->nk", queries, protos)
    return float((scores.argmax(1) == labels).float().mean())
