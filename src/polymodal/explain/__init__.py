"""Explainability: gradient × input saliency and attention maps (see :mod:`.saliency`, :mod:`.attention`)."""

from polymodal.explain.attention import capture_attention, token_importance
from polymodal.explain.saliency import gradient_x_input, modality_shares

__all__ = ["capture_attention", "token_importance", "gradient_x_input", "modality_shares"]
