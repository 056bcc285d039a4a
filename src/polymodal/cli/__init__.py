"""The ``polymodal`` command line: :mod:`.main` assembles one module per command (see ``polymodal --help``)."""

from polymodal.cli.main import app, main

__all__ = ["app", "main"]
