"""Every ```python block in README.md and docs/*.md runs (docs stay true)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [
    pytest.param(code, id=f"{path.name}:{i}")
    for path in DOCS
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", path.read_text(), re.S))
]


@pytest.mark.parametrize("code", BLOCKS)
def test_doc_example_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<doc>", "exec"), {"__name__": "__doc_example__"})


def _command_lines():
    """Every ``spikepack ...`` line of the docs: in ```sh / ```text blocks (with or without a
    ``$ `` prompt) and in README's indented blocks."""
    import shlex

    lines = []
    for path in DOCS:
        text = path.read_text()
        candidates = [ln for block in re.findall(r"```(?:sh|text)\n(.*?)```", text, re.S)
                      for ln in block.splitlines()]
        candidates += [ln[4:] for ln in text.splitlines() if ln.startswith("    spikepack ")]
        for ln in candidates:
            ln = ln.strip().removeprefix("$ ")
            if ln.startswith("spikepack ") and not re.match(r"spikepack [\w-]+: ", ln):  # output
                lines.append(pytest.param(shlex.split(ln, comments=True)[1:],
                                          id=f"{path.name}:{ln[:60]}"))
    return lines


@pytest.mark.parametrize("argv", _command_lines())
def test_doc_command_lines_parse(argv):
    """Every command line shown in the docs has options the CLI takes, and real board names."""
    from sw.cli.main import build_parser
    from sw.compile.targets import target_names

    if "--help" in argv:
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(argv)
        assert e.value.code == 0
        return
    args = build_parser().parse_args(argv)  # exits (fails the test) on a wrong option
    assert getattr(args, "board", None) in (None, *target_names())


def test_every_command_help_example_parses():
    import shlex

    from sw.cli.main import EXAMPLES, build_parser, command_names

    parser = build_parser()
    for name in command_names():
        for example in EXAMPLES[name]:
            parser.parse_args(shlex.split(example)[1:])


@pytest.mark.slow
def test_cli_walkthrough_runs(tmp_path, monkeypatch):
    """docs/cli.md from top to bottom: ```sh lines run in order, ```python blocks in between."""
    import os
    import shlex
    import subprocess
    import sys

    monkeypatch.chdir(tmp_path)
    # `python -m sw.cli` in tmp_path would import whichever checkout is installed: this one's
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    text = (ROOT / "docs" / "cli.md").read_text()
    for kind, body in re.findall(r"```(sh|python)\n(.*?)```", text, re.S):
        if kind == "python":
            exec(compile(body, "<docs/cli.md>", "exec"), {"__name__": "__doc_example__"})
            continue
        for line in body.splitlines():
            argv = shlex.split(line, comments=True)
            if not argv:
                continue
            assert argv[0] == "spikepack", line
            r = subprocess.run([sys.executable, "-m", "sw.cli", *argv[1:]], capture_output=True,
                               text=True, timeout=1200, env=env)
            print(f"$ {line}\n{r.stdout}")
            assert r.returncode == 0, f"{line}: {r.stderr[-2000:]}"


def test_the_repository_stands_alone():
    """docs/ state the contract; no file points at a design note outside the repository."""
    pattern = re.compile(r"\.\./shared|shared/DESIGN|DESIGN\.md")
    offenders = []
    for path in ROOT.rglob("*"):
        if (path.suffix not in (".py", ".md", ".toml", ".sh", ".txt") and path.name != "run"
                or any(p in path.parts for p in (".git", ".venv", "build", "__pycache__"))):
            continue
        if path == Path(__file__):
            continue
        for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
