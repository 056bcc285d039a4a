"""One generic registry, one instance per kind of plug-in (encoder, fusion, head, modality, dataset, GAN
generator and critic, pretraining objective, run kind).

A plug-in registers its class together with a typed config dataclass. The dataclass fields are the
constructor's keyword arguments that a recipe may set; arguments that come from the surrounding model (input
widths, number of classes) are passed by the builder as ``context``.

Each registry names the package that holds its plug-ins and imports every module of it on the first lookup,
as timm's model registry or setuptools entry points find theirs: adding a plug-in is adding its file (or, for a
run kind, its folder), and this module, at the bottom of the package, imports nothing above it.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from polymodal.errors import ConfigError, printable, suggest
from polymodal.schema import parse_dataclass

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered plug-in: its name, the class (or factory) and its config dataclass."""

    name: str
    factory: Callable[..., T]
    config: type
    summary: str


@dataclass
class ComponentSpec:
    """A registered component chosen by name in a recipe, with its validated config dataclass."""

    name: str
    params: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dataclasses.asdict(self.params)}


class Registry(Generic[T]):
    """Maps names to plug-ins of one kind.

    Args:
        kind: Human name of the kind, used in error messages (``"encoder"``).
        package: The package whose modules register the built-in plug-ins (imported on first lookup).
    """

    def __init__(self, kind: str, package: str | None = None) -> None:
        self.kind, self.package = kind, package
        self._entries: dict[str, Entry[T]] = {}
        self._discovered = package is None

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

    def discover(self) -> None:
        """Import every module (and sub-package) of ``package`` once, so each registers what it defines."""
        if self._discovered:
            return
        self._discovered = True  # before importing: a plug-in module may look up its own registry
        pkg = importlib.import_module(str(self.package))
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            importlib.import_module(f"{self.package}.{info.name}")

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._entries

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def get(self, name: str) -> Entry[T]:
        self.discover()
        try:
            return self._entries[name]
        except KeyError:
            close = suggest(str(name), self._entries)
            raise ConfigError(
                f"unknown {self.kind} '{printable(name)}'{close} (available: {', '.join(self.names())})"
            ) from None

    def build(self, name: str, params: Any = None, /, **context: Any) -> T:
        """Build ``name`` from a config dataclass instance (or a mapping) plus model context."""
        entry = self.get(name)
        if params is None or isinstance(params, Mapping):
            params = parse_dataclass(entry.config, params or {}, where=f"{self.kind} '{name}'")
        return entry.factory(**context, **dataclasses.asdict(params))

    def spec(self, value: Any, where: str, defaults: Mapping[str, Any] | None = None) -> ComponentSpec:
        """A recipe's choice of plug-in, ``name`` or ``{name: ..., key: value}``, validated against its config."""
        if isinstance(value, str):
            name, params = value, {}
        elif isinstance(value, Mapping):
            if "name" not in value:
                raise ConfigError(f"{where}: missing required key 'name' (one of: {', '.join(self.names())})")
            name, params = value["name"], {k: v for k, v in value.items() if k != "name"}
        else:
            raise ConfigError(f"{where}: expected a name or a mapping with 'name', got {value!r}")
        entry = self.get(name if isinstance(name, str) else repr(name))
        return ComponentSpec(entry.name, parse_dataclass(entry.config, {**(defaults or {}), **params}, where))


ENCODERS: Registry[Any] = Registry("encoder", "polymodal.encoders")
FUSIONS: Registry[Any] = Registry("fusion", "polymodal.fusion")
HEADS: Registry[Any] = Registry("head", "polymodal.heads")
MODALITIES: Registry[Any] = Registry("modality", "polymodal.data.modalities")
DATASETS: Registry[Any] = Registry("dataset", "polymodal.data.datasets")
GENERATORS: Registry[Any] = Registry("generator", "polymodal.gan")  # GAN generators
CRITICS: Registry[Any] = Registry("critic", "polymodal.gan")  # GAN critics / discriminators
OBJECTIVES: Registry[Any] = Registry("pretraining objective", "polymodal.pretrain")
KINDS: Registry[Any] = Registry("run kind", "polymodal.kinds")  # one folder per kind of run
