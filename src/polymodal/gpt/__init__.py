"""A decoder-only Transformer written here: model (whole forward pass), tokenizers, generation."""
