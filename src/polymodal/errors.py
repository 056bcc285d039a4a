"""Typed errors for every failure a user can cause.

Each message is one line that names the offending thing and says what to do. The CLI prints
``error: <message>`` and exits with the class's ``exit_code``: 2 for usage and recipe errors, 3 for data,
4 for a run directory or checkpoint (a full disk included); 1 is left for bugs (a traceback). The library
only raises.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PolymodalError(Exception):
    """Base class: a failure caused by input the user controls (recipe, data, run directory)."""

    exit_code = 2


class ConfigError(PolymodalError):
    """A recipe key or value is wrong."""


class DataError(PolymodalError):
    """A data file or table is missing, unreadable or malformed."""

    exit_code = 3


class CheckpointError(PolymodalError):
    """A run directory or checkpoint is missing, incomplete or incompatible."""

    exit_code = 4


class DiskFull(CheckpointError):
    """The file system refused a write for lack of space (or a file-size limit); what was written before stays."""


class PeerLost(CheckpointError):
    """Another process of a distributed run died or stopped answering; the run continues from its checkpoint."""


def printable(text: object) -> str:
    """``text`` with newlines and other control characters escaped as Python writes them, so a message that quotes
    user input (a recipe key, an override) stays one line."""
    text = str(text)
    return text if text.isprintable() else repr(text)[1:-1]


def suggest(word: str, choices: Iterable[str], cutoff: float = 0.5) -> str:
    """Return ``" — did you mean 'x'?"`` for the closest choice (similarity at least ``cutoff``), or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=cutoff)
    return f" — did you mean '{close[0]}'?" if close else ""


class ExportError(PolymodalError):
    """A run cannot be exported or compressed as asked (unsupported model, bad option, missing package)."""


class ExportRefusal(ExportError):
    """The run's kind has nothing to export (a language model's decode loop, a GAN): the run is the problem."""

    exit_code = 4
