"""The ``polymodal`` command: one module per command, each a thin shell over :mod:`polymodal.api`.

Every failure a user can cause is one line on stderr and a non-zero exit, never a traceback: a usage error
(unknown command with a did-you-mean, unknown option, missing argument, a value out of range) exits 2 as click
does, and a library error (:class:`PolymodalError`) exits with its class's code: 2 recipe/config, 3 data,
4 run directory or checkpoint (disk full included). 1 is a bug (uncaught, with its traceback); 130 an interrupt.
"""

from __future__ import annotations

import sys
from importlib import metadata
from typing import Annotated

import typer
from rich.markup import escape

try:  # typer >= 0.2x parses with a copy of click it vendors, and raises that copy's exceptions
    from typer._click import exceptions as clickx
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as clickx

from polymodal.cli import (
    benchmark,
    chat,
    datasets,
    evaluate,
    export,
    federated,
    fit,
    generate,
    hyperopt,
    init,
    predict,
    report,
    sample,
    serve,
    train,
)
from polymodal.cli.render import err
from polymodal.errors import PolymodalError, suggest

COMMANDS = (
    fit,
    init,
    train,
    evaluate,
    report,
    predict,
    generate,
    sample,
    chat,
    export,
    serve,
    benchmark,
    federated,
    hyperopt,
)

app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="Multimodal deep learning from validated YAML recipes.",
)
for _module in COMMANDS:
    _name = _module.__name__.rsplit(".", 1)[-1]
    _settings = getattr(_module, "SETTINGS", None)
    app.command(_name, help=_module.HELP, context_settings=_settings)(_module.command)
app.add_typer(datasets.app, name="datasets")


def version() -> str:
    try:
        return metadata.version("polymodal")
    except metadata.PackageNotFoundError:  # a source checkout that was not installed
        return "(not installed: pip install -e .)"


def show_version(value: bool) -> None:
    if value:
        print(f"polymodal {version()}")
        raise typer.Exit()


@app.callback()
def root(
    version_: Annotated[
        bool | None,
        typer.Option("--version", help="Print polymodal's version and exit.", callback=show_version, is_eager=True),
    ] = None,
) -> None:
    """Multimodal deep learning from validated YAML recipes."""


def usage_line(exc: clickx.UsageError) -> str:
    """A click usage error as one line: what was wrong, where, and what to type instead."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    where = exc.ctx.command_path if exc.ctx is not None else "polymodal"
    if isinstance(exc, clickx.NoSuchOption):
        params = exc.ctx.command.params if exc.ctx is not None else []
        options = [o for p in params for o in (*p.opts, *p.secondary_opts) if o.startswith("--")]
        hint = "; recipe keys are set with --set key=value" if "--set" in options else ""
        close = suggest(exc.option_name, options, cutoff=0.75)
        return f"{where}: no such option {exc.option_name}{close}{hint}; see {where} --help"
    if message.startswith("No such command"):
        group = exc.ctx.command if exc.ctx is not None else None
        names = sorted(getattr(group, "commands", None) or {})
        word = message.split("'")[1] if "'" in message else ""
        return f"unknown command '{word}'{suggest(word, names)} (commands: {', '.join(names)}); see {where} --help"
    return f"{where}: {message[0].lower()}{message[1:]}; see {where} --help"


def main(argv: list[str] | None = None) -> None:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and exit with its status."""
    args = sys.argv[1:] if argv is None else list(argv)
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="polymodal", standalone_mode=False)
    except clickx.NoArgsIsHelpError as exc:
        if exc.ctx is not None:
            print(exc.ctx.get_help())
        sys.exit(0)
    except clickx.UsageError as exc:
        err.print(f"[red]error:[/] {usage_line(exc)}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except PolymodalError as exc:  # escaped: a message may quote text with brackets (a path, a library's error)
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except clickx.ClickException as exc:  # e.g. a file option that cannot be opened
        err.print(f"[red]error:[/] {' '.join(exc.format_message().split())}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        err.print("interrupted; continue a training run with: polymodal train --resume --run-dir RUN_DIR")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
