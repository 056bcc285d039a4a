"""``kind: pretrain``: self-supervised pretraining of encoders for ``init_from`` (see :mod:`.kind`)."""

from polymodal.kinds.pretrain.kind import PretrainKind
from polymodal.kinds.pretrain.recipe import PretrainRecipe
from polymodal.registry import KINDS

KINDS.register("pretrain", PretrainRecipe)(PretrainKind)
