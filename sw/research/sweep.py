"""Design-space exploration on Optuna: which core and which quantized model for a board.

A *trial* picks hardware parameters (``n_pe``, ``k``, ``t_max``, ``fire_units``, ``batch_depth``;
the memories are sized to the network) and model parameters (time steps ``T``, weight bits), and
is measured in stages of rising cost (:data:`STAGES`):

1. ``model`` (every trial, about a second): the digits MLP, trained at ``T`` (once per ``T``,
   cached), quantized to ``weight_bits`` and run on the golden model for its accuracy; the exact
   cycles per inference from :mod:`sw.research.cycle_model` on the test inputs; the Bit Budget
   energy estimate (:mod:`sw.research.bitbudget`); the fit checks (the compiler's
   ``build_image`` and the memory bits against the board's :class:`boards.DeviceCapacity`).
   A trial that does not fit is *pruned* (state PRUNED, the reason in its ``pruned`` attribute).
2. ``yosys`` (half a minute to ten): ``hw.build``'s synthesis-only resource estimate for the
   trial's core on the board (``synth_only``: yosys ``synth_xilinx`` for the Arty,
   ``synth_ice40`` / ``synth_ecp5`` netlist cells for the iCEBreaker and ULX3S; no place and
   route). One build per distinct core, cached in the work directory.
3. ``pnr``: the trials as at ``yosys``; then the ``top`` fastest points of the Pareto front are
   placed and routed by ``hw.build``'s full open flow (yosys, on ECP5 the block RAM output
   registers, nextpnr, icepack/ecppack; :func:`place_and_route_front`). Their Fmax and
   nextpnr's utilization, or the reason a point did not fit or route, go into the study's
   ``pnr`` attribute and the Pareto table's columns.

The study is multi-objective (all minimized): cycles per inference, classification error, energy
per inference (pJ) and, at stage ``model``, the array's synaptic adds per cycle (``n_pe k``) and
the core's memory (kbit, :func:`memory_bits`), or
at stages ``yosys``/``pnr`` the LUTs, flip-flops and block RAMs the build uses. Every trial keeps
its parameters, every objective, the derived build (``core``), the stage reached and, if it
failed, the error, as user attributes.

Storage (:func:`open_storage`): a local SQLite file by default, any SQLAlchemy URL (PostgreSQL,
MySQL) to share the study between machines, or an Optuna journal file (``*.log``). With an RDB
storage the workers send heartbeats: a worker killed mid-trial leaves its trial RUNNING until the
grace period passes; the next worker then marks it FAIL and queues a retry of the same point
(``RetryHeartbeatStaleTrialCallback``). Workers run :func:`run_worker` until the study holds
``trials`` finished (complete or pruned) trials.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hw.contract.params import CoreParams

__all__ = ["STAGES", "SweepConfig", "SweepSpace", "TrialResult", "open_storage", "open_study",
           "core_for_network", "evaluate_point", "run_worker", "pareto_rows", "format_table",
           "plot_front", "write_csv", "choose_point", "write_preset", "build_report", "pnr_record",
           "place_and_route_front",
           "confirm_front_on_rtl",
           "SweepError", "CYCLE_MODEL_NOTE"]

STAGES = ("model", "yosys", "pnr")
NETWORKS = ("digits",)

#: What the cycle objective is, written into every study (see docs/sweep.md).
CYCLE_MODEL_NOTE = ("cycles: sw.research.cycle_model, equal (==) to the RTL's per-layer cycle "
                    "counters on every network and build it was checked on (docs/sweep.md)")


class SweepError(ValueError):
    """A sweep cannot run as asked (the message says what is wrong and what to do)."""


@dataclasses.dataclass(frozen=True)
class SweepSpace:
    """The values a trial may take.

    Members
    -------
    k : tuple of int
        Synapse lanes per PE.
    pe_per_lane : tuple of int
        ``n_pe / k`` (``n_pe`` must be a multiple of ``k``).
    t_max : tuple of int
    fire_div : tuple of int
        ``k / fire_units`` (firing units shared by more neurons when larger).
    batch_depth : tuple of int
    T : tuple of int
        Time steps of the model (at most the trial's ``t_max``).
    weight_bits : tuple of int
        Bits of the quantized weights (2..8; stored as int8).
    """

    k: tuple[int, ...] = (4, 8, 16)
    pe_per_lane: tuple[int, ...] = (1, 2, 4)
    t_max: tuple[int, ...] = (8,)
    fire_div: tuple[int, ...] = (1, 2, 4)
    batch_depth: tuple[int, ...] = (1, 8)
    T: tuple[int, ...] = (2, 3, 4, 6, 8)
    weight_bits: tuple[int, ...] = (3, 4, 6, 8)


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """What a worker sweeps and how.

    Members
    -------
    net : str
        The network (``digits``: the sklearn digits SpikePack MLP).
    board : str
        A board of ``boards.BOARDS``; its clock, toolchain, capacity and fixed core settings
        (``acc_bits``, ``weight_regs``, ``lif``, ``max_layers``) are kept.
    stage : str
        Highest stage a trial reaches (:data:`STAGES`).
    work_dir : Path
        Trained models, builds and plots (shared by the workers of one machine).
    hidden : tuple of int
        Hidden layer widths of the MLP.
    epochs : int
        Training epochs per ``T``.
    samples : int
        Test samples the cycle model runs (all 360 give the exact mean; fewer are faster).
    seed : int
    space : SweepSpace
    """

    net: str = "digits"
    board: str = "arty_a7"
    stage: str = "model"
    work_dir: Path = Path("build/sweep")
    hidden: tuple[int, ...] = (64,)
    epochs: int = 40
    samples: int = 360
    seed: int = 0
    space: SweepSpace = SweepSpace()

    def __post_init__(self):
        if self.net not in NETWORKS:
            raise SweepError(f"unknown network {self.net!r}; known: {', '.join(NETWORKS)}")
        if self.stage not in STAGES:
            raise SweepError(f"unknown stage {self.stage!r}; choose one of {', '.join(STAGES)}")
        from boards import get_board
        try:
            preset = get_board(self.board)
        except KeyError as exc:
            raise SweepError(exc.args[0]) from None
        if self.stage == "pnr" and preset.family == "xc7":
            raise SweepError(f"--stage pnr needs an open-toolchain board (ulx3s, icebreaker); "
                             f"the {self.board}'s place and route is Vivado's. Use --stage "
                             f"yosys for its resource estimate")
        if self.samples < 1:
            raise SweepError(f"samples must be at least 1, not {self.samples}")
        object.__setattr__(self, "work_dir", Path(self.work_dir))

    @property
    def preset(self):
        from boards import get_board
        return get_board(self.board)

    def objective_names(self) -> tuple[str, ...]:
        """The study's objectives, in order (all minimized)."""
        base = ("cycles", "error", "energy_pj")
        if self.stage == "model":
            return (*base, "adds_per_cycle", "memory_kbits")
        return (*base, "LUT", "FF", "BRAM")


@dataclasses.dataclass(frozen=True)
class TrialResult:
    """Everything a trial measured (also the user attributes of its Optuna trial)."""

    params: dict
    core: dict
    cycles: float
    accuracy: float
    energy_pj: float
    compute_bits: int
    stage: str
    resources: dict
    fmax_mhz: float | None

    def objectives(self, names: Sequence[str]) -> tuple[float, ...]:
        values = {"cycles": self.cycles, "error": 1.0 - self.accuracy,
                  "energy_pj": self.energy_pj,
                  "adds_per_cycle": float(self.core["n_pe"] * self.core["k"]),
                  "memory_kbits": memory_bits(CoreParams(**self.core)) / 1024,
                  **{r: float(v) for r, v in self.resources.items()}}
        return tuple(values[n] for n in names)


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1, n))))


def core_for_network(sizes: Sequence[int], base: CoreParams, *, n_pe: int, k: int, t_max: int,
                     fire_units: int, batch_depth: int) -> CoreParams:
    """The smallest core of this array shape that holds a dense network of ``sizes``.

    Memories are powers of two just large enough: ``act_chunks`` for the widest layer,
    ``weight_depth`` for every layer's ``passes x chunks`` rows, ``bt_depth`` for the biases and
    thresholds, ``max_layers`` for the layers; ``acc_bits``, ``weight_regs`` and ``lif`` come
    from ``base`` (the board's core). Raises ``ValueError`` when the shape is not a valid build
    (``CoreParams``' own checks).
    """
    widest = max(sizes)
    act_chunks = _pow2_at_least(-(-widest // k))
    while (act_chunks * k) % n_pe:
        act_chunks *= 2
    rows = sum(-(-a // k) * -(-b // n_pe) for a, b in zip(sizes, sizes[1:], strict=False))
    bt = sum(-(-b // n_pe) * n_pe for b in sizes[1:])
    return dataclasses.replace(
        base, n_pe=n_pe, k=k, t_max=t_max, fire_units=fire_units, batch_depth=batch_depth,
        act_chunks=act_chunks, weight_depth=_pow2_at_least(rows),
        bt_depth=max(n_pe, _pow2_at_least(bt)),
        max_layers=max(2, _pow2_at_least(len(sizes) - 1)))


def memory_bits(p: CoreParams) -> int:
    """Bits of the core's memories: weights, spike blocks, bias and threshold, outputs."""
    return (p.weight_capacity * p.weight_bits + p.spike_rows * p.block_bits
            + 2 * p.bt_depth * p.acc_bits + p.output_words * p.acc_bits)


# --- the network -------------------------------------------------------------------------------

def model_path(config: SweepConfig, T: int) -> Path:
    """Where the float model trained at ``T`` is cached (one per machine's work directory)."""
    return config.work_dir / "models" / (
        f"{config.net}_T{T}_h{'-'.join(map(str, config.hidden))}_e{config.epochs}"
        f"_s{config.seed}.pt")


def _float_model(config: SweepConfig, T: int):
    """The digits SpikePack MLP trained at ``T`` (trained once per machine, cached)."""
    from filelock import FileLock

    from sw.train.model_io import load_model, save_model
    from sw.train.models import calibrate_thresholds, spikepack_mlp
    from sw.train.train import as_tensor, seed_everything, torch_threads, train_classifier

    path = model_path(config, T)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.exists():
            return load_model(path)[0]
        split = _digits_split(config.seed)
        x_tr, _ = split.packed(T)
        # A small MLP trains fastest on one thread; other workers share the CPU.
        with torch_threads(1):
            seed_everything(config.seed)
            snn = spikepack_mlp((split.n_features, *config.hidden, split.n_classes), T)
            calibrate_thresholds(snn, as_tensor(x_tr))
            train_classifier(snn, x_tr, split.y_train, epochs=config.epochs, seed=config.seed)
        save_model(snn, path)
        return snn


@functools.lru_cache(maxsize=4)
def _digits_split(seed: int):
    from sw.train.data import load_digits_split
    return load_digits_split(seed)


def quantized_network(config: SweepConfig, T: int, weight_bits: int):
    """``(net, x_test, y_test)``: the trial's integer network and the packed test split."""
    from sw.compile.quantize import quantize_spikepack

    model = _float_model(config, T)
    net, _ = quantize_spikepack(model, weight_bits=weight_bits)
    split = _digits_split(config.seed)
    _, x_test = split.packed(T)
    return net, x_test, split.y_test


# --- one point ---------------------------------------------------------------------------------

class DoesNotFitBoard(Exception):
    """The point does not fit the board (a pruned trial, not a failure)."""


def build_report(config: SweepConfig, core: CoreParams, *, place_and_route: bool) -> dict:
    """``hw.build``'s report for ``core`` on the board: the synthesis-only estimate, or (with
    ``place_and_route``) the full open flow with nextpnr. One build per core and flow, kept under
    ``work_dir/builds`` and reused when it finished (``ok`` or ``does_not_fit``); a build that
    failed or was cut short runs again. The report of a failed build is returned, not raised
    (its ``status`` and ``message`` say what went wrong)."""
    from filelock import FileLock

    from hw.build.main import BuildError, BuildOptions, build
    from sim.rtl.runner import param_tag

    kind = "pnr" if place_and_route else "synth"
    out = config.work_dir / "builds" / f"{config.board}_{param_tag(core)}_{kind}"
    out.parent.mkdir(parents=True, exist_ok=True)
    cached = out / "report.json"
    with FileLock(str(out) + ".lock"):  # one build per directory, whichever worker asks
        report = json.loads(cached.read_text()) if cached.exists() else None
        if report is None or report.get("status") not in ("ok", "does_not_fit"):
            preset = config.preset.replace(params=core)
            try:
                report = build(preset, BuildOptions(out=out, vivado=False, quiet=True,
                                                    allow_timing_fail=True,
                                                    synth_only=not place_and_route))
            except BuildError as exc:
                if not cached.exists():
                    raise
                report = json.loads(cached.read_text())  # written with the failure's status
                report["message"] = report.get("message") or str(exc)
    return {**report, "build_dir": str(out)}


def _yosys_resources(config: SweepConfig, core: CoreParams) -> tuple[dict, float | None]:
    """Stage ``yosys``: the synthesis estimate's LUT, FF, BRAM, DSP for ``core`` (cached)."""
    from hw.build.report import resource_summary

    report = build_report(config, core, place_and_route=False)
    if report["status"] == "does_not_fit":
        raise DoesNotFitBoard(report["message"])
    if report["status"] != "ok":
        raise RuntimeError(f"hw.build failed for {core}: {report['message']}")
    return resource_summary(report), (report.get("timing") or {}).get("fmax_mhz")


def pnr_record(report: dict) -> dict:
    """What the study keeps of a place-and-route build: ``status`` (``ok``, ``does_not_fit``,
    ``error``), nextpnr's Fmax of the accelerator clock and its target, the LUT/FF/BRAM/DSP
    summary and every bel nextpnr used, the build directory, and the message of a failure."""
    from hw.build.report import resource_summary

    timing = report.get("timing") or {}
    # nextpnr's figures (placed, or packed before placement failed), not a pre-check's
    by_nextpnr = "nextpnr" in (report.get("utilization_source") or "")
    summary = resource_summary(report) if by_nextpnr else dict.fromkeys(("LUT", "FF", "BRAM",
                                                                         "DSP"))
    rec = {"status": report["status"], "fmax_mhz": timing.get("fmax_mhz"),
           "target_mhz": timing.get("target_mhz"), "met": timing.get("met"), **summary,
           "utilization": {bel: e["used"] for bel, e in report["utilization"].items()},
           "utilization_source": report.get("utilization_source"),
           "build_seconds": report.get("wall_seconds"),
           "build_dir": report.get("build_dir")}
    if report["status"] not in ("ok", "timing_failed"):
        rec["error"] = report.get("message") or report["status"]
    return rec


def evaluate_point(config: SweepConfig, point: dict) -> TrialResult:
    """Measure one point of the space up to ``config.stage``.

    ``point``: ``k``, ``pe_per_lane``, ``t_max``, ``fire_div``, ``batch_depth``, ``T``,
    ``weight_bits``. Raises :class:`DoesNotFitBoard` when the point does not fit (the trial is
    pruned), ``ValueError`` for a point that is no valid build.
    """
    from sim.golden.model import run_network
    from sw.compile.program_image import DoesNotFitError, build_image

    from .bitbudget import network_cost
    from .cycle_model import predict_cycles

    preset = config.preset
    k, T = int(point["k"]), int(point["T"])
    if T > point["t_max"]:
        raise DoesNotFitBoard(f"T = {T} is above t_max = {point['t_max']}")
    net, x, y = quantized_network(config, T, int(point["weight_bits"]))
    sizes = [net.n_in] + [layer.n_out for layer in net.layers]
    try:
        core = core_for_network(sizes, preset.params, n_pe=k * point["pe_per_lane"], k=k,
                                t_max=point["t_max"], fire_units=max(1, k // point["fire_div"]),
                                batch_depth=point["batch_depth"])
    except (TypeError, ValueError) as exc:
        raise DoesNotFitBoard(f"not a valid build: {exc}") from None
    try:
        build_image(net, core)
    except DoesNotFitError as exc:
        raise DoesNotFitBoard(f"the network does not fit the core: {exc}") from None
    bits = memory_bits(core)
    if bits > preset.capacity.ram_bits:
        raise DoesNotFitBoard(f"memories need {bits:,} bits, the {preset.capacity.device} has "
                              f"{preset.capacity.ram_bits:,}")
    golden = run_network(net, x, acc_bits=core.acc_bits)
    accuracy = float(np.mean(golden.predictions() == y))
    xs = x[:config.samples]
    cycles = float(predict_cycles(net, xs, core).sum(axis=1).mean())
    cost = network_cost(net, "spikepack", x=xs)
    resources: dict = {}
    fmax = None
    stage = "model"
    if config.stage in ("yosys", "pnr"):
        resources, fmax = _yosys_resources(config, core)
        stage = "yosys"
    return TrialResult(params=dict(point), core=dataclasses.asdict(core), cycles=cycles,
                       accuracy=accuracy, energy_pj=float(cost.energy_pj),
                       compute_bits=int(cost.compute_bits), stage=stage, resources=resources,
                       fmax_mhz=fmax)


# --- storage, study, workers -------------------------------------------------------------------

def open_storage(url: str | None, work_dir: Path, *, heartbeat_interval: int = 60,
                 grace_period: int | None = None, max_retry: int = 3):
    """The Optuna storage for ``url``.

    ``None``: ``sqlite:///<work_dir>/sweep.db``. A path ending in ``.log`` or ``.journal``: an
    Optuna journal file (``JournalFileBackend``; no heartbeats, so a killed worker's trial stays
    RUNNING: prefer SQLite or PostgreSQL for resumable sweeps). Another path: a SQLite file. A URL
    with ``://``: SQLAlchemy's (``postgresql+psycopg2://user:pass@host/db``,
    ``sqlite:////abs/path.db``). RDB storages record a heartbeat every ``heartbeat_interval``
    seconds; a trial silent for ``grace_period`` (default twice that) is failed and retried at
    most ``max_retry`` times.
    """
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if url is None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{Path(work_dir).resolve() / 'sweep.db'}"
    elif "://" not in url:
        path = Path(url)
        if path.suffix in (".log", ".journal"):
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path.resolve()}"
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for attempt in range(5):
            try:
                return RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                        max_retry=max_retry))
            except (ImportError, ModuleNotFoundError) as exc:
                raise SweepError(f"storage {url!r} needs a database driver that is not "
                                 f"installed ({exc}); for PostgreSQL: pip install "
                                 f"psycopg2-binary") from None
            except Exception as exc:  # SQLAlchemy's errors: bad URL, unreachable server
                # Workers that start together race to create the schema: the loser retries.
                if attempt == 4 or type(exc).__name__ not in ("OperationalError",
                                                               "IntegrityError"):
                    raise SweepError(f"cannot open storage {url!r}: {type(exc).__name__}: "
                                     f"{exc}") from None
                time.sleep(0.5 + attempt)


def open_study(storage, name: str, config: SweepConfig | None = None):
    """Load study ``name`` (create it when ``config`` is given and it does not exist).

    A study remembers its configuration; a worker joining with a different network, board or
    stage is refused (``SweepError``), since its objectives would not be comparable.
    """
    import optuna

    if config is None:
        try:
            return optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            raise SweepError(f"no study {name!r} in that storage; start one with "
                             f"`spikepack sweep NET --board B --study {name}`") from None
    study = optuna.create_study(
        study_name=name, storage=storage, load_if_exists=True,
        directions=["minimize"] * len(config.objective_names()),
        sampler=optuna.samplers.TPESampler(seed=config.seed + os.getpid(),
                                           n_startup_trials=8))
    mine = _config_attrs(config)
    theirs = study.user_attrs.get("config")
    if theirs is None:
        study.set_user_attr("config", mine)
        study.set_user_attr("objectives", list(config.objective_names()))
        study.set_user_attr("cycle_model", CYCLE_MODEL_NOTE)
    elif {k: theirs.get(k) for k in ("net", "board", "stage", "hidden", "epochs", "seed")} != \
            {k: mine[k] for k in ("net", "board", "stage", "hidden", "epochs", "seed")}:
        raise SweepError(f"study {name!r} was started with {theirs}; this worker has {mine}. "
                         f"Join with the same NET, --board and --stage, or pick another --study")
    return study


def _config_attrs(config: SweepConfig) -> dict:
    d = dataclasses.asdict(config)
    d["work_dir"] = str(config.work_dir)
    d["hidden"] = list(config.hidden)
    d["space"] = {k: list(v) for k, v in d["space"].items()}
    return d


#: The parameters of a trial's point, drawn in this order.
POINT_PARAMS = ("k", "pe_per_lane", "t_max", "fire_div", "batch_depth", "T", "weight_bits")


def _suggest(trial, space: SweepSpace) -> dict:
    return {name: trial.suggest_categorical(name, list(getattr(space, name)))
            for name in POINT_PARAMS}


def _await_first_heartbeat(storage, trial_id: int, timeout: float = 60.0) -> None:
    """Return once ``storage`` holds a heartbeat for trial ``trial_id`` (RDB storages only).

    Optuna's heartbeat thread writes a trial's first heartbeat while the objective already runs,
    and it only counts a RUNNING trial as stale once it has one. A worker killed after drawing
    its point but before that write would leave the trial RUNNING for good, never retried. The
    objective waits for the write first (the thread makes it at once; a few ms) instead of writing
    the row itself, which would race the thread's insert on the table's unique ``trial_id``.
    """
    engine = getattr(storage, "engine", None)
    if engine is None or not getattr(storage, "heartbeat_interval", None):
        return
    import sqlalchemy

    query = sqlalchemy.text("SELECT 1 FROM trial_heartbeats WHERE trial_id = :trial_id")
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            if conn.execute(query, {"trial_id": trial_id}).first() is not None:
                return
        if time.monotonic() > deadline:
            raise SweepError(f"trial {trial_id}: no heartbeat recorded after {timeout:.0f} s; "
                             f"is the storage reachable and writable?")
        time.sleep(0.01)


def finished(study) -> int:
    """Trials that count towards the budget: complete or pruned."""
    from optuna.trial import TrialState
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def run_worker(config: SweepConfig, storage, study_name: str, trials: int, *,
               progress=None, max_failures: int | None = None) -> int:
    """Run trials of the study until it holds ``trials`` finished ones; return how many this
    worker ran. Other workers (other processes or machines on the same storage) may run at
    the same time. A failing trial is recorded FAIL with its ``error`` attribute and the worker
    goes on, until it has seen ``max_failures`` failures in a row (default ``max(3, trials)``):
    then it raises ``SweepError`` naming the last error (a sweep whose every trial fails)."""
    import optuna
    from optuna.trial import TrialState

    study = open_study(storage, study_name, config)
    names = config.objective_names()
    ran = 0
    fails_in_row = 0
    max_failures = max(3, trials) if max_failures is None else max_failures

    def objective(trial):
        _await_first_heartbeat(storage, trial._trial_id)
        point = _suggest(trial, config.space)
        t0 = time.perf_counter()
        try:
            r = evaluate_point(config, point)
        except DoesNotFitBoard as exc:
            trial.set_user_attr("stage", "pruned")
            trial.set_user_attr("pruned", str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        except Exception as exc:
            trial.set_user_attr("stage", "failed")
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            trial.set_user_attr("traceback", traceback.format_exc(limit=8)[-4000:])
            raise
        values = r.objectives(names)
        for key, value in dataclasses.asdict(r).items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("objectives", dict(zip(names, values, strict=True)))
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
        return values

    def stop_when_done(study, trial):
        nonlocal ran, fails_in_row
        ran += 1
        fails_in_row = fails_in_row + 1 if trial.state == TrialState.FAIL else 0
        if progress:
            progress(trial)
        if finished(study) >= trials:
            study.stop()

    if finished(study) >= trials:
        return 0
    while finished(study) < trials:
        study.optimize(objective, n_trials=1, catch=(Exception,),
                       callbacks=[stop_when_done], gc_after_trial=False)
        if fails_in_row >= max_failures:
            last = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))[-1]
            raise SweepError(f"{fails_in_row} trials in a row failed; the last (trial "
                             f"{last.number}): {last.user_attrs.get('error', '?')}")
        # A retried trial (WAITING) is taken by the next optimize call of any worker.
        if not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)) and \
                finished(study) >= trials:
            break
    return ran


# --- results -----------------------------------------------------------------------------------

def _objective_names(study) -> list[str]:
    return list(study.user_attrs.get("objectives", []))


def pareto_rows(study) -> list[dict]:
    """The Pareto front of the study's complete trials, fastest first."""
    names = _objective_names(study)
    confirmed = study.user_attrs.get("rtl_confirmed", {})
    placed = study.user_attrs.get("pnr", {})
    rows = []
    for t in study.best_trials:
        u = t.user_attrs
        rtl = confirmed.get(str(t.number))
        pnr = placed.get(str(t.number))
        rows.append({"trial": t.number, **{f"p_{k}": v for k, v in t.params.items()},
                     "n_pe": u["core"]["n_pe"], "k": u["core"]["k"],
                     "fire_units": u["core"]["fire_units"],
                     **dict(zip(names, t.values, strict=True)),
                     "accuracy": u["accuracy"], "stage": u["stage"],
                     "fmax_mhz": u.get("fmax_mhz"), "core": u["core"],
                     "rtl": None if rtl is None else ("==" if rtl["equal"] else "!="),
                     **_pnr_columns(pnr)})
    return sorted(rows, key=lambda r: (r["cycles"], r["error"]))


#: The Pareto row's place-and-route columns (None before the ``pnr`` stage placed the point).
PNR_COLUMNS = ("pnr_status", "pnr_fmax_mhz", "pnr_LUT", "pnr_FF", "pnr_BRAM", "pnr_error")


def _pnr_columns(rec: dict | None) -> dict:
    if rec is None:
        return dict.fromkeys(PNR_COLUMNS)
    return {"pnr_status": rec["status"], "pnr_fmax_mhz": rec.get("fmax_mhz"),
            "pnr_LUT": rec.get("LUT"), "pnr_FF": rec.get("FF"), "pnr_BRAM": rec.get("BRAM"),
            "pnr_error": rec.get("error")}


def format_table(study) -> str:
    """The Pareto front as a text table, with the study's trial counts and what is exact."""
    from optuna.trial import TrialState

    rows = pareto_rows(study)
    names = _objective_names(study)
    counts = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,)))
              for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL,
                        TrialState.RUNNING, TrialState.WAITING)}
    cfg = study.user_attrs.get("config", {})
    head = (f"study {study.study_name}: {cfg.get('net')} on {cfg.get('board')}, stage "
            f"{cfg.get('stage')}; trials " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    cols = ["trial", "n_pe", "k", "fire_units", "p_t_max", "p_batch_depth", "p_T",
            "p_weight_bits", "cycles", "accuracy", "energy_pj"] + \
        [n for n in names if n not in ("cycles", "error", "energy_pj")]
    if any(r.get("fmax_mhz") for r in rows):
        cols.append("fmax_mhz")
    placed = any(r["pnr_status"] for r in rows)
    if placed:
        cols += ["pnr_fmax_mhz", "pnr_LUT", "pnr_FF", "pnr_BRAM"]
    if any(r.get("rtl") for r in rows):
        cols.append("rtl")
    title = {"p_t_max": "t_max", "p_batch_depth": "batch", "p_T": "T", "p_weight_bits": "w_bits",
             "fire_units": "fire", "energy_pj": "energy pJ", "adds_per_cycle": "adds/cyc",
             "memory_kbits": "mem kbit", "rtl": "RTL cycles",
             "fmax_mhz": "Fmax MHz", "pnr_fmax_mhz": "pnr Fmax MHz", "pnr_LUT": "pnr LUT",
             "pnr_FF": "pnr FF", "pnr_BRAM": "pnr BRAM"}
    hdr = [title.get(c, c) for c in cols]

    def fmt(c, v, row):
        if c == "pnr_fmax_mhz" and row["pnr_status"] not in (None, "ok"):
            return row["pnr_status"]  # does_not_fit, error: the reason is below the table
        if v is None:
            return "-"
        if c == "pnr_fmax_mhz":
            return f"{v:.1f}"
        if c == "accuracy":
            return f"{100 * v:.1f}%"
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 100 or v.is_integer() else f"{v:.2f}"
        return str(v)

    cells = [[fmt(c, r.get(c), r) for c in cols] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) if cells else len(h)
              for i, h in enumerate(hdr)]
    lines = [head, f"Pareto front ({len(rows)} points, all objectives minimized: "
                   f"{', '.join(names)}); {study.user_attrs.get('cycle_model', '')}",
             "  ".join(h.rjust(w) for h, w in zip(hdr, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    if placed:
        cfg_board = cfg.get("board")
        lines.append(f"pnr: nextpnr place and route on the {cfg_board} (Fmax of the accelerator "
                     f"clock; LUT = its logic cells, FF '-' where nextpnr counts them inside "
                     f"those); the other resource columns are yosys' estimate")
        lines += [f"pnr trial {r['trial']}: {r['pnr_status']}: {r['pnr_error']}"
                  for r in rows if r["pnr_error"]]
    return "\n".join(lines)


def write_csv(study, path) -> Path:
    """The Pareto front as CSV, one row per point (the columns of :func:`pareto_rows`, the
    core as its ``CoreParams.describe()`` text), place-and-route columns included."""
    import csv

    rows = pareto_rows(study)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = [k for k in (rows[0] if rows else {}) if k != "core"] + ["core"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({**r, "core": CoreParams(**r["core"]).describe()})
    return path


def plot_front(study, path) -> Path:
    """Accuracy against cycles per inference for every complete trial, the Pareto front marked;
    the marker area grows with the resource objective (LUTs or adds per cycle)."""
    from optuna.trial import TrialState

    from .plots import pyplot

    plt = pyplot()
    names = _objective_names(study)
    size_key = "LUT" if "LUT" in names else "adds_per_cycle"
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    front = {t.number for t in study.best_trials}
    placed = study.user_attrs.get("pnr", {})
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for on_front in (False, True):
        ts = [t for t in trials if (t.number in front) == on_front]
        if not ts:
            continue
        vals = [dict(zip(names, t.values, strict=True)) for t in ts]
        size = np.array([v[size_key] for v in vals], dtype=float)
        size = 20 + 180 * size / max(1.0, size.max())
        ax.scatter([v["cycles"] for v in vals], [100 * (1 - v["error"]) for v in vals], s=size,
                   alpha=0.8 if on_front else 0.3, edgecolors="k" if on_front else "none",
                   label="Pareto front" if on_front else "other trials")
        if on_front:
            labels: dict = {}  # one label per position: the sampler may draw a point twice
            for t, v in zip(ts, vals, strict=True):
                rec = placed.get(str(t.number))
                pnr = "" if rec is None else (f" {rec['fmax_mhz']:.0f} MHz" if rec.get(
                    "fmax_mhz") else f" {rec['status']}")
                xy = (v["cycles"], 100 * (1 - v["error"]))
                text = f"T{t.params['T']} w{t.params['weight_bits']}{pnr}"
                numbers, _ = labels.get((xy, text), ([], None))
                labels[(xy, text)] = ([*numbers, t.number], text)
            for (xy, _), (numbers, text) in labels.items():
                ax.annotate("/".join(f"#{n}" for n in numbers) + f" {text}", xy, fontsize=7,
                            xytext=(4, 2), textcoords="offset points")
    cfg = study.user_attrs.get("config", {})
    ax.set_xscale("log")
    ax.set_xlabel("cycles per inference (cycle model = RTL counters)")
    ax.set_ylabel("test accuracy of the quantized model (%)")
    ax.set_title(f"{cfg.get('net')} on {cfg.get('board')}: marker area = {size_key}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def choose_point(study, *, trial: int | None = None, max_drop: float = 0.01) -> dict:
    """The Pareto point to build: trial ``trial``, or the fastest point whose accuracy is within
    ``max_drop`` of the front's best."""
    rows = pareto_rows(study)
    if not rows:
        raise SweepError(f"study {study.study_name!r} has no complete trial yet; run "
                         f"`spikepack sweep` first")
    if trial is not None:
        for r in rows:
            if r["trial"] == trial:
                return r
        raise SweepError(f"trial {trial} is not on the Pareto front; pick one of "
                         f"{', '.join(str(r['trial']) for r in rows)}")
    best = max(r["accuracy"] for r in rows)
    return min((r for r in rows if r["accuracy"] >= best - max_drop),
               key=lambda r: (r["cycles"], r["error"]))


def write_preset(study, path, *, trial: int | None = None, max_drop: float = 0.01) -> dict:
    """Write the chosen point as a preset file ``python -m hw.build --preset FILE`` builds.

    The file is JSON: ``board`` (the study's board, whose clock and pins are kept), ``params``
    (every :class:`CoreParams` field) and, for the record, the point's trial, model settings
    and figures.
    """
    row = choose_point(study, trial=trial, max_drop=max_drop)
    cfg = study.user_attrs.get("config", {})
    doc = {"schema": "spikepack.preset/1", "board": cfg.get("board"), "params": row["core"],
           "from_study": study.study_name, "trial": row["trial"],
           "model": {"net": cfg.get("net"), "T": row["p_T"], "weight_bits": row["p_weight_bits"],
                     "hidden": cfg.get("hidden")},
           "figures": {k: row[k] for k in ("cycles", "accuracy", "energy_pj") if k in row}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def place_and_route_front(study, config: SweepConfig, *, top: int = 3, progress=None) -> dict:
    """Stage 3: place and route the ``top`` fastest Pareto points with the board's open flow.

    Each point's core is built by ``hw.build`` (yosys, nextpnr, the bitstream; cached per core
    under ``work_dir/builds``, one build at a time); its :func:`pnr_record` (nextpnr's Fmax and
    utilization, or the status and message of a point that did not fit, did not route or whose
    tool failed) goes into the study's ``pnr`` attribute under its trial number, saved after each
    point. A failing point is recorded and the next one built; nothing is raised for it.
    Returns the ``pnr`` attribute; ``progress(trial_number, record)`` after each point.
    """
    if config.preset.family == "xc7":
        raise SweepError(f"place and route needs an open-toolchain board (ulx3s, icebreaker); "
                         f"the {config.board}'s is Vivado's")
    done = dict(study.user_attrs.get("pnr", {}))
    for row in pareto_rows(study)[:top]:
        t0 = time.perf_counter()
        try:
            rec = pnr_record(build_report(config, CoreParams(**row["core"]),
                                          place_and_route=True))
        except Exception as exc:  # a missing tool, a crash: recorded, the next point goes on
            rec = {"status": "error", "fmax_mhz": None, "error": f"{type(exc).__name__}: {exc}"}
        rec["seconds"] = round(time.perf_counter() - t0, 1)
        done[str(row["trial"])] = rec
        study.set_user_attr("pnr", done)
        if progress:
            progress(row["trial"], rec)
    return done


def confirm_front_on_rtl(study, config: SweepConfig, *, samples: int = 8, progress=None) -> dict:
    """Run each Pareto point's network on its own core's RTL (Verilator, one build per core,
    minutes each, cached under ``work_dir/rtl``) and compare the per-layer cycle counters with
    the cycle model's, ``==``, on the first ``samples`` test digits. The verdicts go into the
    study's ``rtl_confirmed`` attribute (trial number -> model and RTL cycles, equal or not)."""
    from sim.rtl.runner import param_tag

    from .cycle_model import measure_cycles_rtl, predict_cycles

    done = dict(study.user_attrs.get("rtl_confirmed", {}))
    for row in pareto_rows(study):
        core = CoreParams(**row["core"])
        net, x, _ = quantized_network(config, row["p_T"], row["p_weight_bits"])
        xs = x[:samples]
        model = predict_cycles(net, xs, core)
        rtl = measure_cycles_rtl(core, [(net, xs)], build_dir=config.work_dir / "rtl"
                                 / f"core_{param_tag(core)}")[0]
        verdict = {"samples": len(xs), "model": float(model.sum(axis=1).mean()),
                   "rtl": float(rtl.sum(axis=1).mean()),
                   "equal": bool(np.array_equal(model, rtl))}
        done[str(row["trial"])] = verdict
        study.set_user_attr("rtl_confirmed", done)
        if progress:
            progress(row["trial"], verdict)
    return done
