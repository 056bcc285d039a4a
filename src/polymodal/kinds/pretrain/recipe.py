"""``kind: pretrain`` recipes: data and inputs as in any recipe, an ``objective`` instead of fusion and head.

```yaml
name: pretrain_mnist_mae
kind: pretrain
objective: {name: mae, mask_ratio: 0.75}
data: {dataset: mnist}
inputs:
  - {name: image, modality: image, encoder: {name: image_vit, patch: 4}}
trainer: {epochs: 10, lr: 0.001}
```

The label column (``data.label``) only stratifies the split and scores zero-shot classification; no
objective trains on it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from polymodal.config import DataConfig, Recipe, TrainerConfig, parse_recipe, recipe_to_dict
from polymodal.errors import ConfigError, printable, suggest
from polymodal.registry import FUSIONS, HEADS, OBJECTIVES, ComponentSpec
from polymodal.schema import NonNegInt


@dataclass
class PretrainRecipe:
    """A self-supervised run: ``kind: pretrain``, an objective (mlm | mae | clip), data, inputs, trainer."""

    name: str
    inputs: list[Any]
    objective: Any  # ComponentSpec of a registered objective
    kind: Literal["pretrain"] = "pretrain"
    seed: NonNegInt = 0
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(monitor="loss"))

    def data_recipe(self) -> Recipe:
        """The same data and inputs as a plain :class:`Recipe` (what the data pipeline reads)."""
        head = ComponentSpec("classification", HEADS.get("classification").config())
        fusion = ComponentSpec("concat", FUSIONS.get("concat").config())
        return Recipe(
            self.name, self.inputs, data=self.data, fusion=fusion, head=head, trainer=self.trainer, seed=self.seed
        )


KEYS = [f.name for f in dataclasses.fields(PretrainRecipe)]


def parse_pretrain_recipe(raw: dict[str, Any], source: str = "recipe") -> PretrainRecipe:
    """Validate a ``kind: pretrain`` mapping; inputs, data and trainer are checked as in any recipe."""
    for key in raw:
        if key not in KEYS:
            raise ConfigError(
                f"{source}: unknown key '{printable(key)}'{suggest(str(key), KEYS)} in a pretrain recipe "
                f"(valid keys: {', '.join(KEYS)})"
            )
    if "objective" not in raw:
        raise ConfigError(f"{source}: missing required key 'objective' (one of: {', '.join(OBJECTIVES.names())})")
    trainer = raw.get("trainer") or {}
    if not isinstance(trainer, dict):
        raise ConfigError(f"{source}: trainer: expected a mapping of keys, got {type(trainer).__name__} {trainer!r}")
    trainer = dict(trainer)
    trainer.setdefault("monitor", "loss")
    if trainer["monitor"] != "loss":
        raise ConfigError(f"{source}: trainer.monitor must be loss for a pretraining run")
    body = {k: v for k, v in raw.items() if k not in ("kind", "objective")}
    base = parse_recipe({**body, "trainer": trainer}, source)
    try:
        objective = OBJECTIVES.spec(raw["objective"], "objective")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    wanted = OBJECTIVES.get(objective.name).factory.INPUTS
    if len(base.inputs) != wanted:
        raise ConfigError(
            f"{source}: objective {objective.name} takes {wanted} input{'s' if wanted > 1 else ''}, "
            f"the recipe has {len(base.inputs)} ({', '.join(s.name for s in base.inputs)})"
        )
    return PretrainRecipe(base.name, base.inputs, objective, "pretrain", base.seed, base.data, base.trainer)


def pretrain_recipe_to_dict(recipe: PretrainRecipe) -> dict[str, Any]:
    """The resolved recipe as plain data (every default filled in), ``kind`` and ``objective`` first."""
    body = recipe_to_dict(recipe.data_recipe())
    for key in ("kind", "fusion", "head", "modality_dropout"):
        body.pop(key, None)
    objective = {"name": recipe.objective.name, **dataclasses.asdict(recipe.objective.params)}
    return {"name": body.pop("name"), "kind": "pretrain", "objective": objective, **body}
