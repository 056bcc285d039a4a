"""Retrieval and zero-shot metrics over paired embeddings (CLIP-style evaluation)."""

from __future__ import annotations

import torch


def recall_at_k(
    sim: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10), positives: torch.Tensor | None = None
) -> dict[int, float]:
    """Recall@K for queries (rows) of ``sim`` (N, N) whose match is the same-index column.

    ``positives`` (N, N) bool marks every column that is a correct answer for a row (default: the diagonal
    only). With duplicate contents — clip-art titles shared by many images — each duplicate is a correct
    answer, and without this mask identical candidates would tie with the match. A query's rank is the number
    of *wrong* candidates scoring strictly higher than its best-scoring correct one; it is found within the
    top K when that rank is below K.
    """
    if positives is None:
        positives = torch.eye(len(sim), dtype=torch.bool)
    best = sim.masked_fill(~positives, float("-inf")).amax(1, keepdim=True)  # (N, 1)
    rank = ((sim > best) & ~positives).sum(1)  # (N,)
    return {k: float((rank < k).float().mean()) for k in ks}


def same_content(z: torch.Tensor, tol: float = 1e-5) -> torch.Tensor:
    """(N, N) bool: rows of L2-normalised embeddings ``z`` (N, E) that are the same point, i.e. came from
    identical inputs (an encoder in eval mode maps equal inputs to equal embeddings)."""
    return (z @ z.T) > 1.0 - tol


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
