"""Differential privacy: DP-SGD training (``trainer.privacy``, :mod:`polymodal.privacy.dpsgd`) and its RDP
accountant (:mod:`polymodal.privacy.accountant`)."""

from polymodal.config import PrivacyConfig
from polymodal.privacy.accountant import epsilon, noise_for_epsilon

__all__ = ["PrivacyConfig", "epsilon", "noise_for_epsilon"]
