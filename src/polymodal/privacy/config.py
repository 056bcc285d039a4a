"""Recipe keys for ``trainer.privacy`` (DP-SGD)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from polymodal.errors import ConfigError


@dataclass
class PrivacyConfig:
    """DP-SGD settings: give ``noise_multiplier`` or ``target_epsilon`` (the noise is then calibrated to the
    run's number of steps), and ``delta``.

    ``max_grad_norm`` bounds each example's gradient (its L2 norm over all parameters) before summing;
    ``delta`` should be well below 1 / (training examples).
    """

    noise_multiplier: Annotated[float, Field(ge=0.0)] | None = None
    target_epsilon: Annotated[float, Field(gt=0.0)] | None = None
    max_grad_norm: Annotated[float, Field(gt=0.0)] = 1.0
    delta: Annotated[float, Field(gt=0.0, lt=1.0)] = 1e-5

    def __post_init__(self) -> None:
        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise ConfigError("trainer.privacy: set exactly one of noise_multiplier or target_epsilon")
