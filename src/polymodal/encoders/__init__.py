"""Encoders: ``forward(x) -> (B, D)`` (or ``(B, T, D)`` tokens) with attribute ``out_dim``."""
