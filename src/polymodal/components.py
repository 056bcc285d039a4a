"""Importing this module registers every built-in component.

Each component lives in its own module under one of the packages below and registers itself on import;
this walks those packages, so adding a component is adding its file.
"""

from __future__ import annotations

import importlib
import pkgutil

PACKAGES = (
    "polymodal.data.modalities",
    "polymodal.data.datasets",
    "polymodal.encoders",
    "polymodal.fusion",
    "polymodal.heads",
    "polymodal.pretrain",
)

for _package in PACKAGES:
    _pkg = importlib.import_module(_package)
    for _info in sorted(pkgutil.iter_modules(_pkg.__path__), key=lambda m: m.name):
        importlib.import_module(f"{_package}.{_info.name}")
