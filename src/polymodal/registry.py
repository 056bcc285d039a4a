"""One generic registry, one instance per component kind.

A component registers its class together with a typed config dataclass. The dataclass fields are the
constructor's keyword arguments that a recipe may set; arguments that come from the surrounding model
(input widths, number of classes) are passed by the builder as ``context``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from polymodal.errors import ConfigError, suggest

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered component: its name, the class (or factory) and its config dataclass."""

    name: str
    factory: Callable[..., T]
    config: type
    summary: str


class Registry(Generic[T]):
    """Maps names to components of one kind (encoder, fusion, head, modality, dataset).

    Args:
        kind: Human name of the kind, used in error messages (``"encoder"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, config: type) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: ``@ENCODERS.register("image_cnn", ImageCNNConfig)`` above a class."""

        def wrap(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            if not dataclasses.is_dataclass(config):
                raise TypeError(f"{self.kind} '{name}': config must be a dataclass")
            doc = (factory.__doc__ or "").strip().splitlines()
            self._entries[name] = Entry(name, factory, config, doc[0] if doc else "")
            return factory

        return wrap

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} '{name}'{suggest(name, self._entries)} (available: {', '.join(self.names())})"
            ) from None

    def build(self, name: str, params: Any = None, /, **context: Any) -> T:
        """Build ``name`` from a config dataclass instance (or a mapping) plus model context."""
        entry = self.get(name)
        if params is None or isinstance(params, Mapping):
            from polymodal.config import parse_dataclass

            params = parse_dataclass(entry.config, params or {}, where=f"{self.kind} '{name}'")
        return entry.factory(**context, **dataclasses.asdict(params))


ENCODERS: Registry[Any] = Registry("encoder")
FUSIONS: Registry[Any] = Registry("fusion")
HEADS: Registry[Any] = Registry("head")
MODALITIES: Registry[Any] = Registry("modality")
DATASETS: Registry[Any] = Registry("dataset")
GENERATORS: Registry[Any] = Registry("generator")  # GAN generators (polymodal.gan)
CRITICS: Registry[Any] = Registry("critic")  # GAN critics / discriminators (polymodal.gan)
OBJECTIVES: Registry[Any] = Registry("pretraining objective")
