"""Exact match of an assistant's answers, broken down: per question type, on held-out paraphrases and digit
combinations, and with each input removed, next to the chance level of answering without that input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from polymodal.kinds.assistant.data import QADataset
from polymodal.kinds.assistant.model import AssistantModel
from polymodal.training.evaluator import Evaluator


def flag(rows: pd.DataFrame, column: str) -> np.ndarray:
    return rows[column].to_numpy(bool) if column in rows else np.zeros(len(rows), dtype=bool)


def by_type(ok: np.ndarray, rows: pd.DataFrame, keep: np.ndarray) -> dict[str, float]:
    return {q: float(ok[keep & (rows["qtype"] == q).to_numpy()].mean()) for q in pd.unique(rows["qtype"][keep])}


def chance(rows: pd.DataFrame, keep: np.ndarray, known: list[str]) -> dict[str, float]:
    """Per question type, the best exact match possible knowing only the true labels of the ``known`` inputs
    (``<input>_label`` columns): in each group of rows that share them, always the group's most common answer."""
    cols = [f"{n}_label" for n in known if f"{n}_label" in rows]
    out = {}
    for q, group in rows[keep].groupby("qtype", sort=False):
        counts = group.groupby(cols)["answer"].agg(lambda a: a.value_counts().iat[0]) if cols else None
        best = int(counts.sum()) if counts is not None else int(group["answer"].value_counts().iat[0])
        out[str(q)] = best / len(group)
    return out


def qa_scores(model: AssistantModel, test: QADataset, rows: pd.DataFrame, evaluator: Evaluator) -> dict[str, Any]:
    """The test split's metrics: ``accuracy`` (exact match, training paraphrases and combinations), per type,
    ``needs_both`` (questions about two inputs), held-out paraphrases and combinations, and without each input."""
    preds, targets, loss = evaluator.predict(test)
    ok = AssistantModel.exact(preds, targets)
    seen = ~flag(rows, "unseen_paraphrase")
    plain = seen & ~flag(rows, "unseen_combination")
    both = (rows["needs"] == "both").to_numpy()
    out: dict[str, Any] = {
        "loss": loss,
        "accuracy": float(ok[plain].mean()),
        "n": int(plain.sum()),
        "by_question": by_type(ok, rows, plain),
    }
    if both.any():
        out["needs_both"] = float(ok[plain & both].mean())
    if (~seen).any():
        out["unseen_paraphrase"] = float(ok[~seen].mean())
        out["unseen_paraphrase_by_question"] = by_type(ok, rows, ~seen)
    if flag(rows, "unseen_combination").any():
        out["unseen_combination"] = float(ok[seen & flag(rows, "unseen_combination")].mean())
    names = list(model.encoders)
    out["without"], out["chance_without"] = {}, {}
    for name in names:
        p, t, _ = evaluator.predict(test.view(frozenset({name})))
        out["without"][name] = by_type(AssistantModel.exact(p, t), rows, plain)
        out["chance_without"][name] = chance(rows, plain, [n for n in names if n != name])
    return out
