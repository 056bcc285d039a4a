"""``kind: gan``: conditional WGAN-GP image generators (see :mod:`.kind`)."""

from polymodal.kinds.gan.kind import GANKind
from polymodal.kinds.gan.recipe import GANRecipe
from polymodal.registry import KINDS

KINDS.register("gan", GANRecipe)(GANKind)
