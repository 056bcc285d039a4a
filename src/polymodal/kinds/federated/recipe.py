"""The ``kind: federated`` recipe: a supervised recipe plus its ``federated`` section (``polymodal federated``
sets the kind for any supervised recipe)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field

from polymodal.config import Recipe, parse_recipe, recipe_to_dict
from polymodal.errors import ConfigError
from polymodal.schema import parse_dataclass


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


@dataclass
class FederatedRecipe(Recipe):
    """A supervised recipe trained by federated averaging: ``kind: federated``."""

    kind: Literal["federated"] = "federated"  # type: ignore[assignment]
    federated: FederatedConfig = field(default_factory=FederatedConfig)


def parse_federated_recipe(raw: dict[str, Any], source: str = "recipe") -> FederatedRecipe:
    """The supervised part validated as any supervised recipe, then the ``federated`` section."""
    body = {k: v for k, v in raw.items() if k not in ("kind", "federated")}
    base = parse_recipe(body, source)
    try:
        fed = parse_dataclass(FederatedConfig, raw.get("federated"), "federated")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if base.trainer.privacy is not None:
        raise ConfigError(f"{source}: trainer.privacy: DP-SGD is not combined with federated training; remove one")
    values = {name: getattr(base, name) for name in base.__dataclass_fields__ if name != "kind"}
    return FederatedRecipe(**values, federated=fed)


def federated_recipe_to_dict(recipe: FederatedRecipe) -> dict[str, Any]:
    out = recipe_to_dict(recipe)
    out["federated"] = dict(vars(recipe.federated))
    return out
