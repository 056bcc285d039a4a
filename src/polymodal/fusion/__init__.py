"""Fusions: ``forward(embeddings: dict[str, Tensor]) -> Tensor`` over sorted keys, attribute ``out_dim``."""
