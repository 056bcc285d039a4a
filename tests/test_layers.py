"""The package's shape: no module in an import cycle (imports inside functions count), the layers contract
holds, and importing any module cannot replace a public API function."""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

import polymodal


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.find_modules_directly_imported_by(w)))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
    return cycles


def test_no_module_is_in_an_import_cycle():
    graph = grimp.build_graph("polymodal", cache_dir=None)  # every import statement, also inside functions
    assert len(graph.modules) > 100
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle(tmp_path, monkeypatch):
    pkg = tmp_path / "cyclic"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from cyclic import b\n")
    (pkg / "b.py").write_text("from cyclic import c\n")
    (pkg / "c.py").write_text("import cyclic.a\n")
    (pkg / "d.py").write_text("import cyclic.c\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles(grimp.build_graph("cyclic", cache_dir=None)) == [["cyclic.a", "cyclic.b", "cyclic.c"]]


@pytest.mark.skipif(
    shutil.which("lint-imports", path=str(Path(sys.executable).parent)) is None, reason="no lint-imports"
)
def test_the_layers_contract_holds():
    root = Path(__file__).resolve().parents[1]
    exe = Path(sys.executable).parent / "lint-imports"
    res = subprocess.run([str(exe), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:]
    assert "1 kept, 0 broken" in res.stdout


def test_no_public_name_is_a_subpackage_and_importing_everything_keeps_the_api():
    public = {name: getattr(polymodal, name) for name in polymodal.__all__}
    modules = [m.name for m in pkgutil.walk_packages(polymodal.__path__, "polymodal.")]
    assert "polymodal.metrics.roc" in modules and "polymodal.training.trainer" in modules
    subpackages = {m.split(".")[1] for m in modules}
    assert not set(public) & subpackages, "a public name that is also a subpackage can be replaced by an import"
    for name in modules:
        if name.endswith("__main__"):  # importing it runs the command line
            continue
        importlib.import_module(name)
    for name, value in public.items():
        assert getattr(polymodal, name) is value, f"importing the package's modules replaced polymodal.{name}"
    assert callable(polymodal.evaluate) and callable(polymodal.train)
