"""mkdocs hook: the reference pages, generated from the code at every build (never written by hand or committed).

- ``reference/recipes.md``: every run kind's recipe dataclasses (``KINDS``) with field names, types, constraints,
  defaults and the source comments next to each field;
- ``reference/components.md``: every registry's entries (encoders, fusions, heads, modalities, datasets,
  objectives, GAN generators and critics) with their config dataclasses, through ``Registry.entries()``;
- ``reference/cli.md``: the ``--help`` of ``polymodal`` and of each of its commands.

A hook rather than a script that writes files: the pages cannot go stale or be edited by hand, ``mkdocs serve``
regenerates them on each rebuild, and ``mkdocs build --strict`` is the one command CI runs.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import io
import json
import re
import sys
import tokenize
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
# Document the checkout being built, not whichever polymodal the virtual environment's editable install points at.
sys.path.insert(0, str(ROOT / "src"))

HELP_COLUMNS = "120"


# ---------------------------------------------------------------------------------------------- source comments
@cache
def _module_source(module: str) -> tuple[ast.Module, dict[int, str], list[str]]:
    """A module's syntax tree, its comments by line number and its lines."""
    source = inspect.getsource(importlib.import_module(module))
    comments = {
        tok.start[0]: tok.string.lstrip("#").strip()
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    }
    return ast.parse(source), comments, source.splitlines()


def _class_node(cls: type) -> ast.ClassDef | None:
    tree, _, _ = _module_source(cls.__module__)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            return node
    return None


def _field_comment(cls: type, name: str) -> str:
    """The comment lines right above a field and the comment at the end of its line, from the class that
    declares it (a subclass's field, or an inherited one)."""
    for klass in cls.__mro__:
        node = _class_node(klass) if dataclasses.is_dataclass(klass) else None
        if node is None:
            continue
        _, comments, lines = _module_source(klass.__module__)
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == name:
                above, line = [], stmt.lineno - 1
                while line >= 1 and lines[line - 1].strip().startswith("#"):
                    above.insert(0, comments[line])
                    line -= 1
                span = range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1)
                trailing = [comments[n] for n in span if n in comments]
                return " ".join(above + trailing)
    return ""


def _docstring(cls: type) -> str:
    """The class's own docstring (dataclasses invent one from the signature when there is none)."""
    node = _class_node(cls)
    return rst_to_md(ast.get_docstring(node) or "") if node else ""


def rst_to_md(text: str) -> str:
    text = re.sub(r":\w+:`~?([\w.]+)`", lambda m: f"`{m.group(1).rsplit('.', 1)[-1]}`", text)
    return text.replace("``", "`")


# ---------------------------------------------------------------------------------------------- types, defaults
def _constraints(meta: list[Any]) -> str:
    out = []
    for item in meta:
        for sub in [item, *getattr(item, "metadata", [])]:
            for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
                value = getattr(sub, attr, None)
                if value is not None and f"{sign} {value}" not in out:
                    out.append(f"{sign} {value}")
    return ", ".join(out)


def fmt_type(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        base, cons = fmt_type(args[0]), _constraints(list(args[1:]))
        return f"{base} ({cons})" if cons else base
    if origin is typing.Literal:
        return " or ".join(f"`{a!r}`".replace("'", '"') for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [fmt_type(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or `null`" if type(None) in args else "")
    if origin in (list, dict, tuple, set):
        return f"{origin.__name__}[{', '.join(fmt_type(a) for a in args)}]" if args else origin.__name__
    if tp is Any:
        return "any"
    if dataclasses.is_dataclass(tp):
        return f"[{tp.__name__}](#{anchor(tp)})"
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def anchor(cls: type) -> str:
    return f"cfg-{cls.__name__.lower()}"


def fmt_default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    if dataclasses.is_dataclass(value):
        changed = [
            f"{g.name}: {getattr(value, g.name)!r}"
            for g in dataclasses.fields(value)
            if g.default is not dataclasses.MISSING and getattr(value, g.name) != g.default
        ]
        return "its defaults" + (f", but {', '.join(changed)}" if changed else "")
    try:  # as it would be written in YAML/JSON: true, null, "text", [1, 2]
        return f"`{json.dumps(value, ensure_ascii=False)}`"
    except TypeError:
        return f"`{value!r}`"


# Fields typed `Any` that are validated against a registry: how the value reads, and where that registry is documented.
CHOSEN = "a registered name, or `{{name: ..., key: value}}` ([{}](components.md#{}))"
KEYS_OF = "the keys of the chosen {} ([{}](components.md#{}))"
COMPONENT_FIELDS = {
    "encoder": CHOSEN.format("encoders", "encoders"),
    "fusion": CHOSEN.format("fusions", "fusions"),
    "head": CHOSEN.format("heads", "heads"),
    "objective": CHOSEN.format("pretraining objectives", "pretraining-objectives"),
    "generator": CHOSEN.format("GAN generators", "gan-generators"),
    "critic": CHOSEN.format("GAN critics", "gan-critics"),
    "preprocessing": KEYS_OF.format("modality", "modalities", "modalities"),
    "options": KEYS_OF.format("dataset", "datasets", "datasets"),
}


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def dataclass_table(cls: type) -> str:
    hints = typing.get_type_hints(cls, include_extras=True)
    rows = ["| key | type | default | notes |", "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        kind = fmt_type(hints[f.name])
        if hints[f.name] is Any and f.name in COMPONENT_FIELDS:
            kind = COMPONENT_FIELDS[f.name]
        rows.append(f"| `{f.name}` | {cell(kind)} | {cell(fmt_default(f))} | {cell(_field_comment(cls, f.name))} |")
    return "\n".join(rows)


def dataclass_section(cls: type, level: int = 3, title: str | None = None) -> str:
    head = f"{'#' * level} {title or cls.__name__} {{#{anchor(cls)}}}"
    where = f"`{cls.__module__}.{cls.__name__}`"
    doc = _docstring(cls)
    return "\n\n".join(part for part in (head, where, doc, dataclass_table(cls)) if part) + "\n"


# ---------------------------------------------------------------------------------------------- pages
def _dataclasses_of(module: str) -> list[type]:
    """The dataclasses a module defines (in source order), then polymodal dataclasses it imports."""
    mod = importlib.import_module(module)
    own = [v for v in vars(mod).values() if dataclasses.is_dataclass(v) and isinstance(v, type)]
    defined = sorted((c for c in own if c.__module__ == module), key=lambda c: inspect.getsourcelines(c)[1])
    imported = [c for c in own if c.__module__ != module and c.__module__.startswith("polymodal.")]
    return defined + imported


def recipes_page() -> str:
    from polymodal.registry import KINDS

    entries = KINDS.entries()
    out = [
        "# Recipe reference",
        "Generated at build time by `docs/hooks/reference.py` from the recipe dataclasses of each run kind "
        "(`polymodal.registry.KINDS`): field names, types, constraints, defaults and the comments next to each "
        "field in the source. A recipe's `kind:` picks the section (default `supervised`); a key not listed is an "
        "error that names the nearest valid key.",
        "| kind | what it trains | recipe |\n|---|---|---|"
        + "".join(
            f"\n| `{e.name}` | {cell(rst_to_md(e.summary))} | [{e.config.__name__}](#{anchor(e.config)}) |"
            for e in entries
        ),
    ]
    shown: set[type] = set()
    order = ["supervised"] + [e.name for e in entries if e.name != "supervised"]
    for name in order:
        entry = KINDS.get(name)
        recipe_module = entry.config.__module__
        if name != "supervised":  # every other kind keeps its recipe in its own folder
            recipe_module = f"{entry.factory.__module__.rsplit('.', 1)[0]}.recipe"
        out.append(f"## `kind: {name}` {{#kind-{name}}}")
        classes = [entry.config] + [c for c in _dataclasses_of(recipe_module) if c is not entry.config]
        for cls in classes:
            if cls in shown:
                out.append(f"`{cls.__name__}`: as in [{cls.__name__}](#{anchor(cls)}).")
                continue
            shown.add(cls)
            out.append(dataclass_section(cls))
    return "\n\n".join(out) + "\n"


def components_page() -> str:
    from polymodal import registry

    registries = [
        ("Encoders", "encoders", registry.ENCODERS, "`inputs[].encoder`"),
        ("Fusions", "fusions", registry.FUSIONS, "`fusion`"),
        ("Heads", "heads", registry.HEADS, "`head`"),
        ("Modalities", "modalities", registry.MODALITIES, "`inputs[].modality`; the keys are `inputs[].preprocessing`"),
        ("Datasets", "datasets", registry.DATASETS, "`data.dataset`; the keys are `data.options`"),
        ("Pretraining objectives", "pretraining-objectives", registry.OBJECTIVES, "`objective` (`kind: pretrain`)"),
        ("GAN generators", "gan-generators", registry.GENERATORS, "`generator` (`kind: gan`)"),
        ("GAN critics", "gan-critics", registry.CRITICS, "`critic` (`kind: gan`)"),
    ]
    out = [
        "# Component reference",
        "Generated at build time by `docs/hooks/reference.py` from `polymodal.registry`: every registered "
        "component (`Registry.entries()`: name, class, config dataclass, the first line of its docstring) with the "
        "keys a recipe may set. A component is chosen as `name` or `{name: ..., key: value}`.",
    ]
    for title, slug, reg, where in registries:
        out.append(f"## {title} {{#{slug}}}")
        out.append(f"Chosen in a recipe by {where}.")
        out.append("| name | summary | config |\n|---|---|---|")
        out[-1] += "".join(
            f"\n| [`{e.name}`](#{slug}-{e.name}) | {cell(rst_to_md(e.summary))} | `{e.config.__name__}` |"
            for e in reg.entries()
        )
        for e in reg.entries():
            out.append(f"### `{e.name}` {{#{slug}-{e.name}}}")
            out.append(f"`{e.factory.__module__}.{e.factory.__name__}`, config `{e.config.__name__}`")
            doc = _docstring(e.config)
            if doc:
                out.append(doc)
            out.append(dataclass_table(e.config) if dataclasses.fields(e.config) else "No keys.")
    return "\n\n".join(out) + "\n"


def cli_help(args: list[str]) -> str:
    """What `python -m polymodal ARGS --help` prints, run in this process on the same click command."""
    from typer.testing import CliRunner

    from polymodal.cli.main import app

    env = {"COLUMNS": HELP_COLUMNS, "NO_COLOR": "1", "TERM": "dumb"}
    result = CliRunner().invoke(app, [*args, "--help"], env=env, prog_name="polymodal")
    if result.exit_code != 0:
        raise RuntimeError(f"polymodal {' '.join(args)} --help exited {result.exit_code}: {result.output}")
    lines = [line.rstrip() for line in result.output.splitlines()]
    return "\n".join(lines).strip("\n")


def cli_page() -> str:
    from polymodal.cli.main import COMMANDS

    commands = [[m.__name__.rsplit(".", 1)[-1]] for m in COMMANDS] + [["datasets", "list"]]
    out = [
        "# CLI reference",
        "Generated at build time by `docs/hooks/reference.py`: the output of `polymodal --help` and of "
        "`polymodal COMMAND --help` for each command in `polymodal.cli.main.COMMANDS`, plus `datasets list`. "
        "Every failure prints one `error:` line on stderr and exits with status 2.",
        "## `polymodal`",
        f"```text\n{cli_help([])}\n```",
    ]
    for args in commands:
        name = " ".join(args)
        out.append(f"## `polymodal {name}` {{#{'-'.join(args)}}}")
        out.append(f"```text\n{cli_help(args)}\n```")
    return "\n\n".join(out) + "\n"


PAGES = {
    "reference/recipes.md": recipes_page,
    "reference/components.md": components_page,
    "reference/cli.md": cli_page,
}


def on_files(files: Files, config: Any) -> Files:
    for uri, build in PAGES.items():
        files.append(File.generated(config, uri, content=build()))
    return files
