"""ROC curves and the area under them, in numpy (scikit-learn is only a test dependency).

Ties follow scikit-learn's convention: one ROC point per distinct score, so a block of tied scores moves
the curve diagonally, and the area counts a tied positive/negative pair as half a correct ordering.
"""

from __future__ import annotations

import numpy as np


def roc_curve(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False/true positive rates at every distinct score threshold (highest first), starting at (0, 0).

    Args:
        positive: (N,) bool or 0/1, True for the positive class.
        scores: (N,) higher = more positive.

    Returns:
        fpr (P,), tpr (P,), thresholds (P,) with ``thresholds[0] = inf``. A rate whose denominator is zero
        (no positives, or no negatives) is NaN.
    """
    y = np.asarray(positive).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"roc_curve: {y.shape[0]} labels but {s.shape[0]} scores")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last index of each run of tied scores
    tps = np.cumsum(y)[last].astype(np.float64)
    fps = (last + 1 - tps).astype(np.float64)
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = tps / tps[-1] if tps[-1] > 0 else np.full_like(tps, np.nan)
        fpr = fps / fps[-1] if fps[-1] > 0 else np.full_like(fps, np.nan)
    return fpr, tpr, np.r_[np.inf, s[last]]


def auc(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoidal area under the curve (x ascending, as a ROC curve's fpr is)."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    fpr, tpr, _ = roc_curve(positive, scores)
    return float("nan") if np.isnan(fpr).any() or np.isnan(tpr).any() else auc(fpr, tpr)


def one_vs_rest(
    y_true: np.ndarray, probs: np.ndarray, classes: list[str]
) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """Per class ``(fpr, tpr, auc)`` of "this class vs the rest", scored by its probability.

    Args:
        y_true: (N,) class indices, or (N, K) 0/1 (multi-label: each label is its own binary problem).
        probs: (N, K) class probabilities (or any per-class scores).
        classes: K names.

    Binary single-label problems (K = 2) give one curve, for the second class, as is customary.
    """
    y = np.asarray(y_true)
    onehot = y.astype(bool) if y.ndim == 2 else np.eye(len(classes), dtype=bool)[y]
    keep = [1] if y.ndim == 1 and len(classes) == 2 else range(len(classes))
    out = {}
    for k in keep:
        fpr, tpr, _ = roc_curve(onehot[:, k], probs[:, k])
        out[classes[k]] = (fpr, tpr, roc_auc(onehot[:, k], probs[:, k]))
    return out


def macro_auc(curves: dict[str, tuple[np.ndarray, np.ndarray, float]]) -> float:
    """Mean AUC over the classes that have both positives and negatives (scikit-learn's ``macro`` OvR)."""
    values = [a for _, _, a in curves.values() if not np.isnan(a)]
    return float(np.mean(values)) if values else float("nan")
