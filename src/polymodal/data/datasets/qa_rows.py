"""Question rows for the small QA datasets (clip art, BasicMotions): one row per example and question type,
phrased by a seeded draw among the type's training paraphrases; test examples are also asked the type's last
paraphrase, which training never sees (``unseen_paraphrase``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def qa_rows(
    frame: pd.DataFrame,
    split: Sequence[str],
    columns: dict[str, str],
    answers: dict[str, Sequence[str]],
    paraphrases: dict[str, list[str]],
    seed: int,
) -> pd.DataFrame:
    """``columns``: output column -> column of ``frame`` (inputs, ``<input>_label``); ``answers``: question type
    -> one answer per example."""
    rng = np.random.default_rng([seed, 23])
    rows = []
    for i in range(len(frame)):
        base = {out: frame[col].iat[i] for out, col in columns.items()}
        for qtype, phrases in paraphrases.items():
            asked = [(phrases[int(rng.integers(len(phrases) - 1))], False)]
            if split[i] == "test":
                asked.append((phrases[-1], True))
            for question, unseen in asked:
                rows.append({**base, "question": question, "answer": answers[qtype][i], "qtype": qtype,
                             "needs": "all", "unseen_paraphrase": unseen, "example": i, "split": split[i]})  # fmt: skip
    return pd.DataFrame(rows)
