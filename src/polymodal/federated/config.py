"""Recipe keys for the ``federated`` section (used by ``polymodal federated``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field


@dataclass
class FederatedConfig:
    """A FedAvg simulation: ``clients`` hold label-skewed shards of the training split; each round a
    ``fraction`` of them trains ``local_epochs`` on its own shard from the global weights, and the server
    averages the results weighted by shard size.

    ``alpha`` is the Dirichlet concentration of each class's spread over clients: 0.1 leaves most clients
    with one or two classes, 1.0 with a skewed mix, 100 is close to IID.
    """

    clients: Annotated[int, Field(ge=1)] = 10
    alpha: Annotated[float, Field(gt=0.0)] = 1.0
    rounds: Annotated[int, Field(ge=1)] = 10
    local_epochs: Annotated[int, Field(ge=1)] = 1
    fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
