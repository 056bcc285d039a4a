"""Fusions: ``forward(embeddings: dict[str, Tensor], present=None) -> Tensor``.

``embeddings`` maps each input to (B, D) or (B, T, D) tokens; keys are read in sorted order. ``present``
(optional) maps each input to (B,) bool flags: a missing modality arrives as a zero embedding with flag
False, and each fusion leaves it out in the way its family allows. Each fusion has ``out_dim`` and
``emits_logits`` (True when it already produces class scores, so the head only supplies the loss).
"""
