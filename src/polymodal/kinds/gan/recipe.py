"""The ``kind: gan`` recipe: data and condition, generator, critic, WGAN-GP trainer, samples and scoring.

Validated like every recipe (unknown keys and bad values are one-line errors naming the key); the
generator and critic sections against the config dataclass registered with the named component.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field

from polymodal.errors import ConfigError
from polymodal.registry import CRITICS, DATASETS, GENERATORS
from polymodal.schema import Fraction, NonNegFloat, NonNegInt, PositiveFloat, PositiveInt, parse_dataclass

Beta = Annotated[float, Field(ge=0.0, lt=1.0)]


@dataclass
class GANDataConfig:
    """Images and their conditions: a built-in dataset, split as classification recipes split it."""

    dataset: str = "mnist"
    options: Any = None
    image_column: str = "image"
    image_size: Annotated[int, Field(ge=8, le=256)] = 28
    channels: Literal[1, 3] = 1
    # label: the dataset's label column (a class index); text: a bag of words over text_columns.
    condition: Literal["label", "text"] = "label"
    label: str | None = None  # default: the dataset's label column
    text_columns: list[str] = field(default_factory=lambda: ["title", "keywords"])
    vocab_size: Annotated[int, Field(ge=2)] = 1000
    min_count: Annotated[int, Field(ge=1)] = 2
    val_fraction: Fraction = 0.1
    test_fraction: Fraction = 0.2
    max_train: NonNegInt = 0  # train on at most this many images (0 = every non-test image)


@dataclass
class GANTrainerConfig:
    """WGAN-GP optimisation; defaults are the paper's (Adam 1e-4, β = (0, 0.9), n_critic 5, λ 10, batch 64)."""

    epochs: PositiveInt = 10
    steps_per_epoch: PositiveInt = 100  # generator steps per epoch (each after n_critic critic steps)
    # One batch's inputs and activations live in memory at once: 65,536 small examples is already a full-batch
    # run on most tables; 10^8 (which used to pass) would allocate for every row of a table that large.
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 64
    n_critic: PositiveInt = 5
    gp_weight: NonNegFloat = 10.0
    lr_generator: PositiveFloat = 1e-4
    lr_critic: PositiveFloat = 1e-4
    beta1: Beta = 0.0
    beta2: Beta = 0.9
    checkpoint_every: NonNegInt = 100  # generator steps; a checkpoint is also written at every epoch end
    threads: NonNegInt = 0
    tensorboard: bool = False  # scalars into <run>/tb (needs the tensorboard extra)
    time_limit: NonNegFloat = 0.0  # seconds: stop after the epoch that reaches it (0 = no limit)
    mlflow: bool = False  # parameters and per-epoch metrics to MLflow (needs the mlflow extra)


@dataclass
class GANEvalConfig:
    """Sample grids and the conditional-accuracy score."""

    grid_rows: PositiveInt = 10  # conditions shown: the first classes, or held-out (test) captions
    grid_columns: PositiveInt = 8  # samples per condition (text grids add the real image in front)
    # A classification recipe (name, path or mapping) trained into <run>/classifier on the same dataset and
    # split; generated images are scored by how often it agrees with the requested class. null: no score.
    classifier: Any = None
    per_class: PositiveInt = 100  # generated images per class scored at the end
    per_class_epoch: NonNegInt = 20  # ... and at each epoch end (0 = only at the end)


@dataclass
class GANRecipe:
    """A conditional GAN run: ``kind: gan``."""

    name: str
    kind: Literal["gan"] = "gan"
    seed: NonNegInt = 0
    data: GANDataConfig = field(default_factory=GANDataConfig)
    generator: Any = "dcgan"
    critic: Any = "dcgan"
    trainer: GANTrainerConfig = field(default_factory=GANTrainerConfig)
    evaluation: GANEvalConfig = field(default_factory=GANEvalConfig)


def parse_gan_recipe(raw: dict[str, Any], source: str = "recipe") -> GANRecipe:
    """Validate a raw ``kind: gan`` mapping into a :class:`GANRecipe`; errors are one line."""
    try:
        recipe = parse_dataclass(GANRecipe, raw, where="")
        data = recipe.data
        data.options = parse_dataclass(DATASETS.get(data.dataset).config, data.options, "data.options")
        if data.condition == "text" and not data.text_columns:
            raise ConfigError("data.text_columns: a text condition needs at least one column")
        if data.val_fraction + data.test_fraction >= 1.0:
            raise ConfigError("data: val_fraction + test_fraction must be below 1 so training data remains")
        recipe.generator = GENERATORS.spec(recipe.generator, "generator")
        recipe.critic = CRITICS.spec(recipe.critic, "critic")
        clf = recipe.evaluation.classifier
        if clf is not None and not isinstance(clf, (str, dict)):
            raise ConfigError("evaluation.classifier: give a recipe name, a YAML path, a mapping, or null")
        if clf is not None and data.condition != "label":
            raise ConfigError("evaluation.classifier: scores label-conditioned runs only; set it to null")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}".replace(": : ", ": ")) from None
    return recipe


def gan_recipe_to_dict(recipe: GANRecipe) -> dict[str, Any]:
    """The resolved recipe as plain data (components flattened to ``{name, **keys}``), re-parseable."""
    out = dataclasses.asdict(recipe)
    for key in ("generator", "critic"):
        spec = getattr(recipe, key)
        out[key] = {"name": spec.name, **dataclasses.asdict(spec.params)}
    return out
