"""The layering of the code (pyproject.toml's import-linter contracts) holds, and would catch a
wrong-way import; no module imports itself through a cycle."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hw", "sw", "sim", "boards")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(exe), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_layer_contracts_are_kept():
    r = lint_imports(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


def test_a_wrong_way_import_breaks_the_contract(tmp_path):
    """The gateware importing the CLI (a layer far above it) must fail the check."""
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    pe = tmp_path / "hw" / "core" / "pe.py"
    pe.write_text(pe.read_text() + "\nimport sw.cli.options  # wrong way\n")
    r = lint_imports(tmp_path)
    assert r.returncode != 0
    assert "hw.core is not allowed to import sw.cli" in r.stdout, r.stdout


def test_no_module_level_import_cycles():
    graph = grimp.build_graph(*PACKAGES)
    modules = sorted(graph.modules)
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    cycles = []

    def visit(m, stack):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.find_modules_directly_imported_by(m)):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n, stack)
        stack.pop()
        state[m] = 2

    for m in modules:
        if m not in state:
            visit(m, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)
