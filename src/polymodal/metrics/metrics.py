"""Classification metrics from predicted and true class indices (no framework dependency)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts; row = true class, column = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, class_names: list[str] | None = None
) -> dict:
    """Accuracy, macro precision/recall/F1, per-class scores and the confusion matrix.

    A class never predicted has precision 0 and one absent from ``y_true`` has recall 0 (scikit-learn's
    ``zero_division=0``); macro averages run over all K classes.
    """
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(np.float64)
    pred_n, true_n = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, pred_n, out=np.zeros_like(tp), where=pred_n > 0)
    recall = np.divide(tp, true_n, out=np.zeros_like(tp), where=true_n > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    names = class_names or [str(i) for i in range(num_classes)]
    return {
        "accuracy": float(tp.sum() / max(1, cm.sum())),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": {
            n: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for n, p, r, f, s in zip(names, precision, recall, f1, true_n, strict=True)
        },
        "confusion_matrix": cm.tolist(),
        "n": int(cm.sum()),
    }
