"""``kind: supervised``, the default kind: a multimodal model trained on labelled rows (see :mod:`.kind`)."""

from polymodal.config import Recipe
from polymodal.kinds.supervised.kind import SupervisedKind
from polymodal.registry import KINDS

KINDS.register("supervised", Recipe)(SupervisedKind)
