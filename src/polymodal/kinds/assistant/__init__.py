"""``kind: assistant``: multimodal question answering and chat (see :mod:`.kind`)."""

from polymodal.kinds.assistant.kind import AssistantKind
from polymodal.kinds.assistant.recipe import AssistantRecipe
from polymodal.registry import KINDS

KINDS.register("assistant", AssistantRecipe)(AssistantKind)
