"""Label leaks in text: the words of the class names, removing them, and a fit-time check that warns.

Text that restates its row's label (an emoji name containing its category, keywords listing the category)
lets a model look the label up instead of learning; on emoji names that was worth +0.13 accuracy. The label
is unknown at prediction time, so the removal takes out the words of *every* class name, in training and
prediction alike: removing only the row's own label could not be repeated on a new row, and would itself
leak (a class word left in the text would then mean "not that class").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence

log = logging.getLogger(__name__)

# Glue words in class names such as "signs_and_symbols": removing them from every text would hurt more than
# the little they say about the label.
STOP = frozenset({"and", "or", "of", "the", "a", "an"})
# A text input whose class-name lookup gives the training label this often is flagged (see leak_rate).
LEAK_WARN_RATE = 0.9
# The check reads at most this many training rows: the rate is a fraction, a sample estimates it well.
LEAK_CHECK_ROWS = 5000


def label_words(*names: str) -> set[str]:
    """Lower-case words of class names and their singulars, plus each whole name:
    'signs_and_symbols' -> signs, sign, symbols, symbol, signs_and_symbols."""
    words: set[str] = set()
    for name in names:
        name = str(name).strip().lower()
        parts = {w for w in re.split(r"[_\s]+", name) if w and w not in STOP}
        words |= parts | {w[:-1] for w in parts if w.endswith("s") and len(w) > 2}
        if name:
            words.add(name)
    return words


class WordRemover:
    """Removes whole words (case-insensitive) from text; a word inside a longer word ('cat' in 'catalog')
    stays. Whitespace left behind is collapsed to single spaces.

    Args:
        words: The words to remove, e.g. :func:`label_words` of every class name.
    """

    def __init__(self, words: Iterable[str]) -> None:
        self.words = sorted({w.lower() for w in words if w})
        # Longest first, so that 'signs_and_symbols' goes whole before 'signs' could split it.
        alternatives = "|".join(re.escape(w) for w in sorted(self.words, key=len, reverse=True))
        self._pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE) if self.words else None

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return " ".join(self._pattern.sub(" ", text).split())

    def found(self, text: str) -> set[str]:
        """The listed words that occur in ``text`` (lower case)."""
        return {m.lower() for m in self._pattern.findall(text)} if self._pattern is not None else set()


def leak_rate(texts: Sequence[str], labels: Sequence[Sequence[str]], classes: Sequence[str]) -> float:
    """How often looking up class names in the text alone gives the row's label(s) exactly.

    The lookup: the classes whose :func:`label_words` occur in the text; a row counts when they are exactly
    its own labels (one class for a classification head). Text that names every class, or none, counts as
    no prediction, so the rate measures a label written in the text, not class words that appear anyway.
    """
    if not texts:
        return 0.0
    per_class = {c: label_words(c) for c in classes}
    finder = WordRemover(set().union(*per_class.values()))
    hits = 0
    for text, own in zip(texts, labels, strict=True):
        found = finder.found(text)
        named = {c for c, words in per_class.items() if words & found}
        hits += bool(named) and named == set(own)
    return hits / len(texts)


def warn_if_leaky(name: str, texts: Sequence[str], labels: Sequence[Sequence[str]], classes: Sequence[str]) -> float:
    """Log a warning when text input ``name`` alone gives the training labels (see :func:`leak_rate`)."""
    rate = leak_rate(texts[:LEAK_CHECK_ROWS], labels[:LEAK_CHECK_ROWS], classes)
    if rate >= LEAK_WARN_RATE:
        log.warning(
            "text input '%s' leaks the label: the class names written in it give the label of %.0f%% of training "
            "rows; set preprocessing.drop_label_words: true on that input to remove every class name's words",
            name,
            100 * rate,
        )
    return rate
