"""Heads: ``forward(h) -> logits`` and ``loss(logits, target)``."""
