"""``polymodal generate``: continue a prompt with a finished language-model run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from polymodal.cli.render import out
from polymodal.gpt.compile_policy import AUTO_COMPILE_TOKENS

HELP = """Generate text with a trained language-model run (KV cache on by default).

[b]Examples[/b]

  polymodal generate runs/shakespeare_char --prompt "ROMEO:" --max-tokens 300 --temperature 0.8 --top-k 40
  polymodal generate runs/shakespeare_char --prompt "KING" --temperature 0 --beams 4 --max-tokens 60
"""


COMPILE = {"auto": "auto", "on": True, "off": False}


def compile_choice(value: str) -> str:
    if value not in COMPILE:
        raise typer.BadParameter(f"is {value!r}; use one of {', '.join(COMPILE)}")
    return value


def non_empty(value: str) -> str:
    if value == "":
        raise typer.BadParameter("is empty; give the text to continue, e.g. --prompt 'ROMEO:' (a newline: '\\n')")
    return value


def command(
    run_dir: Annotated[Path, typer.Argument(help="A finished language-model run directory.")],
    prompt: Annotated[str, typer.Option(help="Text to continue.", callback=non_empty)] = "\n",
    max_tokens: Annotated[int, typer.Option(min=1, help="New tokens at most.")] = 200,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 = greedy.")] = 0.8,
    top_k: Annotated[int, typer.Option(min=0, help="Keep the k most likely tokens (0 = all).")] = 0,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0, help="Nucleus sampling mass (1 = off).")] = 1.0,
    repetition_penalty: Annotated[float, typer.Option(min=1.0, help="> 1 discourages repeats.")] = 1.0,
    beams: Annotated[int, typer.Option(min=0, help="Beam search with this many beams (0 = sample).")] = 0,
    stop: Annotated[list[str] | None, typer.Option(help="Stop after this text (repeatable).")] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    cache: Annotated[bool, typer.Option(help="Use the KV cache.")] = True,
    compile: Annotated[
        str,
        typer.Option(
            help=f"Compile the decode step: on, off, or auto (on for --max-tokens >= {AUTO_COMPILE_TOKENS:,}, "
            "where the seconds spent compiling pay off).",
            callback=compile_choice,
        ),
    ] = "auto",
) -> None:
    import torch

    from polymodal import api
    from polymodal.gpt.generate import beam_search, stream

    lm = api.load(run_dir, "generate")
    model, tokenizer = lm.model, lm.tokenizer
    ids = torch.tensor([tokenizer.encode(prompt)], dtype=torch.long)
    stops = [tokenizer.encode(s.replace("\\n", "\n").replace("\\t", "\t")) for s in stop or []]
    out.print(prompt, end="", markup=False, highlight=False)
    if beams:
        new = beam_search(
            model, ids, max_tokens, beams=beams, stop=stops or None, use_cache=cache, compile=COMPILE[compile]
        )
        out.print(tokenizer.decode(new), markup=False, highlight=False)
        return
    gen = torch.Generator().manual_seed(seed)
    shown: list[int] = []
    tokens = stream(
        model, ids, max_tokens, temperature, top_k or None, top_p, repetition_penalty, stops or None,
        use_cache=cache, generator=gen, compile=COMPILE[compile],
    )  # fmt: skip
    for tok in tokens:
        shown.append(tok)
        text = tokenizer.decode(shown)
        if "\ufffd" not in text:  # a BPE token may end inside a multi-byte character: wait for the rest
            out.print(text, end="", markup=False, highlight=False)
            out.file.flush()
            shown = []
    out.print()
