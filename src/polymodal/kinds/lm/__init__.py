"""``kind: lm``: GPT language models on a text corpus (see :mod:`.kind`)."""

from polymodal.kinds.lm.kind import LMKind
from polymodal.kinds.lm.recipe import LMRecipe
from polymodal.registry import KINDS

KINDS.register("lm", LMRecipe)(LMKind)
