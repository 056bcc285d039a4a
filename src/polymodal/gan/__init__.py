"""Conditional GAN components (``kind: gan`` trains them with WGAN-GP): generators, critics, losses, sampling."""
