"""Differential privacy: DP-SGD training (``trainer.privacy``, :mod:`polymodal.privacy.dpsgd`) and its RDP
accountant (:mod:`polymodal.privacy.accountant`)."""

from polymodal.privacy.accountant import epsilon, noise_for_epsilon
from polymodal.privacy.config import PrivacyConfig

__all__ = ["PrivacyConfig", "epsilon", "noise_for_epsilon"]
