"""Conditional GANs trained with WGAN-GP (``kind: gan`` recipes): generators, critics, loop and scoring."""
