"""``polymodal chat``: ask a finished assistant run about files, in the terminal, answers streamed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from polymodal.cli.render import err, out
from polymodal.errors import PolymodalError

HELP = """Chat with a trained assistant run (kind: assistant): attach files, ask, get answers token by token.

Without --message it reads your messages from the terminal. Commands: [b]/image PATH[/b], [b]/audio PATH[/b]
(or /NAME PATH for any input of the run), [b]/reset[/b] (forget files and history), [b]/quit[/b]. History
is kept as long as it fits the model's context; the oldest turns are dropped first.

[b]Examples[/b]

  polymodal chat runs/avdigits_qa
  polymodal chat runs/avdigits_qa --image seven.png --audio 3_jackson_0.wav --message "What is their sum?"
"""


def say(chat: Any, text: str, max_tokens: int | None) -> None:
    """Stream one answer (a refused message raises before anything is printed)."""
    pieces = chat.ask(text, max_tokens)
    for piece in pieces:
        out.print(piece, end="", markup=False, highlight=False)
        out.file.flush()
    out.print()


def attach(chat: Any, name: str, path: str) -> None:
    if not path:
        raise PolymodalError(f"/{name} needs a file: /{name} PATH")
    file = Path(path).expanduser()
    if not file.is_file():
        raise PolymodalError(f"{path}: no such file; give the path of a {chat.run.modalities.get(name, name)} file")
    if chat.attach(name, str(file)):
        err.print(f"(new {name}: earlier turns dropped)", highlight=False)


def interactive(chat: Any, max_tokens: int | None) -> None:
    names = ", ".join(f"/{n} PATH" for n in chat.run.modalities)
    err.print(f"attach with {names}; /reset, /quit", highlight=False)
    while True:
        if sys.stdin.isatty():
            out.print("> ", end="")
        line = sys.stdin.readline()
        if not line or line.strip() in ("/quit", "/exit"):
            return
        line = line.strip()
        try:
            if line == "/reset":
                chat.reset()
                err.print("(conversation reset)")
            elif line.startswith("/") and line[1:].split(" ", 1)[0] in chat.run.modalities:
                name, _, path = line[1:].partition(" ")
                attach(chat, name, path.strip())
            elif line.startswith("/"):
                raise PolymodalError(f"unknown command {line.split()[0]}; use {names}, /reset or /quit")
            else:
                say(chat, line, max_tokens)
        except PolymodalError as exc:  # one line, and the conversation goes on
            err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)


def command(
    run_dir: Annotated[Path, typer.Argument(help="A finished assistant run directory.")],
    image: Annotated[Path | None, typer.Option(help="Attach this file as the 'image' input.")] = None,
    audio: Annotated[Path | None, typer.Option(help="Attach this file as the 'audio' input.")] = None,
    attach_: Annotated[
        list[str] | None, typer.Option("--attach", help="Attach NAME=PATH for any input of the run (repeatable).")
    ] = None,
    message: Annotated[
        list[str] | None, typer.Option(help="Ask this and exit instead of reading the terminal (repeatable: turns).")
    ] = None,
    max_tokens: Annotated[int | None, typer.Option(min=1, help="Answer tokens at most (default: the run's).")] = None,
) -> None:
    from polymodal import api

    chat = api.load(run_dir, "chat").chat()
    pairs = [("image", str(image))] if image else []
    pairs += [("audio", str(audio))] if audio else []
    for item in attach_ or []:
        name, sep, path = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"'{item}' is not NAME=PATH", param_hint="--attach")
        pairs.append((name, path))
    for name, path in pairs:
        attach(chat, name, path)
    if message:
        for text in message:
            say(chat, text, max_tokens)
        return
    interactive(chat, max_tokens)
