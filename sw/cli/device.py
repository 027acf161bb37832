"""``spikepack`` commands that compile for and run on the accelerator: ``compile``, ``simulate``,
``deploy``, ``infer``.

A model argument is an integer network (``.npz``: ``train --out``, ``quantize``, ``import-nir``)
or a program image (``.spkimg``: ``compile``). A device is a board on a serial port (``--port``,
any pyserial URL) or the accelerator's RTL simulated with the same driver (``--sim``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .options import (
    DEFAULT_BOARD,
    SIM_BOARD,
    add_board_arg,
    add_sim_args,
    load_model,
    target,
)
from .registry import UserError, command

# --- shared helpers ----------------------------------------------------------------------------


def _data_args(p):
    p.add_argument("--data", "--dataset", dest="data", default="digits", metavar="DATA",
                   help="a data set's test split (digits, mnist-5k; mnist, fashion-mnist, "
                        "cifar10 with --data-dir; npz:PATH of images and labels), or an .npz "
                        "file with 'x' (packed T-bit inputs, n x n_in; a conv network also "
                        "takes n x C x H x W images) and optional 'y' (labels) (default digits)")
    p.add_argument("--data-dir", help="directory with the files of mnist, fashion-mnist, cifar10")
    p.add_argument("--seed", type=int, default=0, help="seed of the digits train/test split")
    p.add_argument("--limit", type=int, metavar="N", help="use the first N samples only")


def _shape_text(shape) -> str:
    return "x".join(map(str, shape))


def _takes(net) -> str:
    """What the network's input is, in words: ``784 packed inputs`` or ``1x28x28 images``."""
    if len(net.in_shape) == 3:
        return f"{_shape_text(net.in_shape)} images ({net.n_in} packed inputs each)"
    return f"{net.n_in} packed inputs"


def _flat_inputs(x, net, where: str):
    """``x`` as ``(n, n_in)``: an image network also takes ``(n, C, H, W)`` (and ``(n, H, W)``
    for one channel), flattened in C, H, W order as the golden model and the driver read it."""
    shape = tuple(net.in_shape)
    if x.ndim == 2 and x.shape[1] == net.n_in:
        return x
    if len(shape) == 3 and x.shape[1:] in (shape, shape[1:] if shape[0] == 1 else None):
        return x.reshape(len(x), net.n_in)
    if len(shape) == 3:
        also = f", (n, {shape[1]}, {shape[2]})" if shape[0] == 1 else ""
        want = f"(n, {', '.join(map(str, shape))}){also} or (n, {net.n_in})"
    else:
        want = f"(n, {net.n_in})"
    raise UserError(f"the network takes {_takes(net)}; {where} has shape {x.shape}: give "
                    f"{want} packed {net.T}-bit words")


def _inputs(args, net, split: str = "test"):
    """``(x, y or None, description)``: packed inputs for ``net``, ``(n, n_in)``, and their
    labels; a data set's ``split`` (``"test"`` or ``"train"``)."""
    from sim.golden.packing import check_packed

    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be at least 1")
    from sw.train.datasets import dataset_names, is_dataset

    if args.data.endswith(".npz") and not args.data.startswith("npz:"):
        path = Path(args.data)
        if not path.exists():
            raise UserError(f"input file {path} does not exist")
        x, y = _read_inputs(path)
        x = check_packed(np.atleast_2d(x), net.T, f"'x' of {path}")
        if not len(x):
            raise UserError(f"'x' of {path} has no samples (shape {x.shape}); it needs at "
                            f"least one sample of {_takes(net)}")
        x = _flat_inputs(x, net, f"'x' of {path}")
        if y is not None and len(y) != len(x):
            raise UserError(f"{path}: 'y' has {len(y)} labels for {len(x)} samples in 'x'")
        name = path.name
    elif is_dataset(args.data):
        from sw.train.datasets import load_dataset

        ds = load_dataset(args.data, args.data_dir, seed=args.seed)
        image = tuple(ds.image_shape)
        if (image != tuple(net.in_shape)) if len(net.in_shape) == 3 else \
                ds.n_features != net.n_in:
            raise UserError(f"the network takes {_takes(net)}; the {ds.name} test split has "
                            f"{_shape_text(image)} images ({ds.n_features} inputs each): pick "
                            "the data set the network was trained on (--data), or an .npz of "
                            "packed inputs")
        x_train, x = ds.packed(net.T)  # flat, in C, H, W order
        y, name = ds.y_test, f"{ds.name} test split"
        if split == "train":
            x, y, name = x_train, ds.y_train, f"{ds.name} training split"
    else:
        raise UserError(f"--data must be a data set ({', '.join(dataset_names())}, npz:PATH) "
                        f"or an .npz file of packed inputs, not {args.data!r}")
    n = len(x) if args.limit is None else min(args.limit, len(x))
    return x[:n], (None if y is None else np.asarray(y)[:n]), f"{name}, {n} samples"


def _read_inputs(path):
    """``(x, y or None)`` from an inputs ``.npz``; a damaged or wrong file is a UserError."""
    remedy = "save inputs with numpy.savez(FILE, x=X, y=Y)"
    try:
        with open(path, "rb") as fh:
            if not fh.read(4).startswith(b"PK"):
                raise UserError(f"input file {path} is not an .npz archive (empty, an .npy or "
                                f"another format); {remedy}")
        with np.load(path) as f:
            if "x" not in f.files:
                raise UserError(f"{path} has no array 'x' (packed inputs, n x n_in); {remedy}")
            return f["x"], (f["y"] if "y" in f.files else None)
    except UserError:
        raise
    except Exception as e:  # zipfile, numpy's header parser, zlib...: the file is damaged
        detail = " ".join(str(e).split())
        raise UserError(f"input file {path} is damaged or truncated ({e.__class__.__name__}: "
                        f"{detail}); {remedy}") from None


def _compile(net, params, target_name, order=None):
    from sw.compile.program_image import DoesNotFitError, build_image
    from sw.compile.targets import check_gateware

    try:
        image = build_image(net, params, order)
        check_gateware(image)
        return image
    except DoesNotFitError as e:
        raise UserError(f"the network does not fit {target_name}: {e}; pick a larger build or "
                        "shrink the network") from None


def _image(net, params, image_file=None):
    """The program image that runs: the image file's, else ``net`` compiled for ``params``
    (its ``max_batch`` is the driver's batch, its ``block_order`` the stored blocks')."""
    from sw.compile.program_image import build_image

    return image_file.image if image_file is not None else build_image(net, params)


def _accuracy(pred, y) -> str:
    return "n/a (no labels)" if y is None else f"{100 * np.mean(pred == y):.2f}%"


def _sizes(net):
    """Each layer's size (``64 -> 10``, ``conv 1x8x8 -> 6x4x4``) and the column's width."""
    from sw.compile.targets import layer_size

    sizes = [layer_size(layer) for layer in net.layers]
    return sizes, max(11, *(len(s) for s in sizes))


def _counter_table(net, runs, n, clk_freq) -> str:
    """Per-layer counters (``runs``: cycles, spikes, skipped per run and layer; total per run)."""
    cyc, spk, skp = (np.asarray(a).sum(axis=0) for a in runs[:3])
    sizes, wide = _sizes(net)
    rows = [f"{'layer':>5s}  {'size':>{wide}s}  {'cycles/sample':>13s}  {'spikes/sample':>13s}  "
            f"{'rate':>6s}  {'zero chunks skipped/sample':>26s}"]
    for i, (layer, size) in enumerate(zip(net.layers, sizes, strict=True)):
        rate = "-" if layer.readout else f"{spk[i] / n / (layer.n_out * net.T):.3f}"
        rows.append(f"{i:5d}  {size:>{wide}s}  {cyc[i] / n:13.1f}  "
                    f"{spk[i] / n:13.1f}  {rate:>6s}  {skp[i] / n:26.1f}")
    per = max(1, int(np.sum(runs[3]))) / n
    rows.append(f"core: {per:.0f} cycles/sample = {1e6 * per / clk_freq:.2f} us at "
                f"{clk_freq / 1e6:g} MHz ({clk_freq / per:,.0f} samples/s, link time excluded)")
    return "\n".join(rows)


def _golden_check(net, x, outputs, runs, image):
    """``(golden result, differing samples, runs whose spike or skip counters differ)``.

    ``runs``: the device's cycles, spikes, skipped per run and layer (and total cycles per
    run). Run ``r`` held samples ``r B .. r B + B - 1``, ``B = image.max_batch`` (what
    ``Device.infer`` batches by: ``batch_depth``, or fewer when a sample's input or outputs fill
    the INPUT or OUTPUT region, as a 28x28 image does on the Arty A7). The skipped all-zero
    bit-plane chunks expected of each layer are
    :func:`sw.research.rtl_results.predicted_work`'s (conv layers walk their receptive fields).
    """
    from sim.golden.model import run_network
    from sw.compile.block_order import ordered_network
    from sw.research.rtl_results import predicted_work

    golden = run_network(net, x)
    if image.block_order is None:
        _, skipped = predicted_work(net, x, image.params, golden)
    else:  # the device skips the blocks of the network as it stores it
        order = image.block_order
        _, skipped = predicted_work(ordered_network(net, order), order.inputs(x), image.params)
    bad = int(np.sum(np.any(outputs != golden.output, axis=-1)))
    batch, spikes = image.max_batch, golden.spikes_per_layer.T  # (n, layers)
    bad_runs = max(0, len(runs[1]) - -(-len(x) // batch))  # runs past the samples' batches
    for r, (run_spikes, run_skipped) in enumerate(zip(runs[1], runs[2], strict=True)):
        sl = slice(r * batch, (r + 1) * batch)
        bad_runs += int(not (np.array_equal(run_spikes, spikes[sl].sum(axis=0))
                             and np.array_equal(run_skipped, skipped[sl].sum(axis=0))))
    return golden, bad, bad_runs


def _report_run(net, x, y, outputs, runs, image, clk_freq, show, save=None) -> int:
    """Print accuracy, outputs, counters and the golden comparison; 1 if not bit-exact.

    ``runs``: cycles, spikes, skipped per run and layer, total cycles per run. ``image``: the
    program image that ran (its ``max_batch`` samples per run). ``save``: an ``.npz`` path for
    the device's outputs, the golden model's and the counters.
    """
    golden, bad, bad_runs = _golden_check(net, x, outputs, runs, image)
    n_runs = len(runs[1])
    if save:
        np.savez(save, outputs=outputs, golden=golden.output, x=x,
                 **({} if y is None else {"y": y}),
                 **dict(zip(("cycles", "spikes", "skipped", "total_cycles"), runs, strict=True)))
    pred = np.argmax(outputs, axis=-1)
    print(f"accuracy: device {_accuracy(pred, y)}, "
          f"golden model {_accuracy(golden.predictions(), y)}")
    if show:
        print(f"first {min(show, len(x))} outputs (device):")
        for i in range(min(show, len(x))):
            label = "" if y is None else f"label {y[i]}  "
            out = np.array2string(outputs[i], max_line_width=200)
            print(f"  {i:4d}  {label}pred {pred[i]}  {out}")
    print(_counter_table(net, runs, len(x), clk_freq))
    if bad or bad_runs:
        print(f"NOT bit-exact: {bad} of {len(x)} samples and {bad_runs} of {n_runs} runs' "
              "spike or skip counters differ from the golden model")
        return 1
    print(f"bit-exact: all {len(x)} outputs and the spike and skip counters of all {n_runs} "
          "runs equal the golden model's")
    if save:
        print(f"wrote {save}")
    return 0


def _rtl_runs(run):
    return run.cycles, run.spikes, run.skipped, run.total_cycles


def _open_device(args):
    """Open ``--port`` and identify: ``(device, info, params)``. Errors say what to check."""
    import logging

    from sw.host.driver import Device, DeviceError
    from sw.host.transport import SerialTransport

    # Resends are counted and reported; per-frame warnings would break the one-line errors.
    logging.getLogger("sw.host.driver").setLevel(logging.ERROR)
    if args.timeout <= 0:
        raise UserError(f"--timeout must be positive seconds, not {args.timeout}")
    if args.baud is not None and args.baud <= 0:
        raise UserError(f"--baud must be a positive rate, not {args.baud}")
    board = target(args.board) if args.board else None
    baud = args.baud or (board and board.baud) or target(DEFAULT_BOARD).baud
    try:
        transport = SerialTransport(args.port, baud)
    except OSError as e:
        raise UserError(f"no board on {args.port}: {e}") from None
    dev = Device(transport, timeout=args.timeout)
    try:
        info = dev.identify()
    except DeviceError as e:
        transport.close()
        raise UserError(f"no SpikePack board answered on {args.port}: {e}") from None
    try:
        params = info.core_params()
    except ValueError as e:
        transport.close()
        raise UserError(f"the device on {args.port}: {e}") from None
    print(f"device on {args.port}: {params.describe()}; link {info.link.baud / 1e6:g} Mbaud "
          f"at {info.link.clk_freq / 1e6:g} MHz, frames up to {info.link.max_payload} bytes")
    return dev, info, params


def _device_args(p, *, board_help):
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", metavar="URL",
                       help="the board's serial port: a device (/dev/ttyUSB1: the Arty's second "
                            "FT2232H port) or any pyserial URL (socket://host:port, rfc2217://...)")
    where.add_argument("--sim", action="store_true",
                       help="the accelerator's RTL under Verilator instead of a board (the same "
                            "driver over the simulated UART pins; the first run per build "
                            "compiles the model, a few minutes)")
    add_board_arg(p, None, board_help)
    p.add_argument("--baud", type=int, help="--port: UART rate (default: the --board preset's, "
                                            f"else {DEFAULT_BOARD}'s)")
    p.add_argument("--timeout", type=float, default=1.0,
                   help="--port: seconds to wait for a reply before resending (default 1)")
    add_sim_args(p)


def _sim_params(args, image_file):
    """Build parameters of the simulated device: the image's, else ``--board`` (default small)."""
    from hw.contract.memory_map import identity_mismatch

    if image_file is not None:
        if not args.board:
            return image_file.image.params, image_file.target
        why = identity_mismatch(target(args.board).params, image_file.image.params)
        if why:
            raise UserError(f"the image is compiled for {image_file.target or 'another build'}, "
                            f"not {args.board} ({why}); recompile with --board {args.board} or "
                            "drop --board")
        return target(args.board).params, args.board
    tgt = target(args.board or SIM_BOARD)
    return tgt.params, tgt.name


def _run_rtl(args, net, image_file, params, name, x):
    from sim.rtl.runner import SimulatorMissing
    from sim.rtl.session import RtlSessionError, run_on_rtl

    _compile(net, params, name)  # refuse what does not fit before building the RTL model
    try:
        return run_on_rtl(image_file or net, x, params, simulator=args.simulator,
                          build_dir=args.build_dir, progress=not args.quiet)
    except (SimulatorMissing, RtlSessionError) as e:
        raise UserError(str(e)) from None


# --- compile -----------------------------------------------------------------------------------


def _configure_compile(p):
    p.add_argument("net", help="integer network (.npz), or an image (.spkimg) to recompile")
    where = p.add_mutually_exclusive_group()
    add_board_arg(where, DEFAULT_BOARD, "compile for this build")
    where.add_argument("--port", metavar="URL",
                       help="compile for the board on this serial port (its identify reply)")
    p.add_argument("--baud", type=int, help=f"--port: UART rate (default {DEFAULT_BOARD}'s)")
    p.add_argument("--timeout", type=float, default=1.0,
                   help="--port: seconds to wait for a reply before resending (default 1)")
    p.add_argument("-o", "--out", required=True, help="program image to write (.spkimg)")
    p.add_argument("--order-on", metavar="DATA",
                   help="store each dense layer's inputs in the order that puts inputs silent "
                        "together in one spike block, planned on DATA: a data set's training "
                        "split (digits, mnist-5k; mnist, fashion-mnist, cifar10 with --data-dir) "
                        "or an .npz with 'x' (packed inputs); exact, fewer cycles where the "
                        "core skips more blocks (sw.compile.block_order)")
    p.add_argument("--data-dir", help="--order-on: directory with the files of mnist, "
                                      "fashion-mnist, cifar10")


@command("compile", "compile an integer network to a program image for a board or build; "
                    "print the layout and memory use, refuse what does not fit", examples=(
                        "spikepack compile net.npz --board arty_a7 -o net.spkimg",
                        "spikepack compile net.npz --board small -o net_small.spkimg",
                        "spikepack compile net.npz --board ulx3s --order-on mnist-5k -o "
                        "net.spkimg",
                        "spikepack compile net.npz --port /dev/ttyUSB1 -o net.spkimg"))
def cmd_compile(args) -> int:
    from sw.compile.image_file import save_image_file
    from sw.compile.targets import layer_table, usage_table

    net, _ = load_model(args.net)
    if args.port:
        dev, _, params = _open_device(args)
        dev.transport.close()
        name = f"device {args.port}"
    else:
        tgt = target(args.board)
        params, name = tgt.params, tgt.name
    order = _block_order(args, net, params) if args.order_on else None
    image = _compile(net, params, name, order)
    print(f"target {name}: {params.describe()}")
    print(layer_table(net, image))
    print(usage_table(net, image))
    print(_batch_line(image))
    save_image_file(args.out, image, net, name)
    sizes = ", ".join(f"{w.region.lower()} {len(w.words)}" for w in image.writes)
    print(f"fits; wrote {args.out} ({sum(len(w.words) for w in image.writes)} words: {sizes})")
    return 0


def _block_order(args, net, params):
    """``--order-on``: the order :func:`sw.compile.block_order.plan_block_order` plans on the
    data's training split (or the .npz's ``x``); prints what it does to the data's beats."""
    from sw.compile.block_order import MAX_SAMPLES, beats_per_pass, orderable, plan_block_order

    if not orderable(net):
        raise UserError("--order-on reorders networks of dense layers only (a conv network's "
                        "blocks are channel chunks of a map position); drop --order-on")
    spec = argparse.Namespace(data=args.order_on, data_dir=args.data_dir, seed=0, limit=None)
    x, _, desc = _inputs(spec, net, split="train")
    order = plan_block_order(net, x, params)
    used = f" (the first {MAX_SAMPLES} used)" if len(x) > MAX_SAMPLES else ""
    beats = ", ".join(f"layer {li} {b[0]:.1f} -> {b[1]:.1f}" for li, b in enumerate(
        beats_per_pass(net, x[:MAX_SAMPLES], params, order)) if b is not None)
    print(f"block order planned on {desc}{used}: beats per pass on them "
          f"{beats or 'unchanged (no layer has more than one block of inputs)'}")
    return order


def _batch_line(image) -> str:
    """How many samples one batch run takes, and what limits it (``image.max_batch``)."""
    from sw.compile.batch_map import image_map_width

    p = image.params
    what = "image" if len(image.in_shape) == 3 else "sample"
    line = (f"batch: {image.max_batch} {what}{'s' if image.max_batch > 1 else ''} per run "
            f"(batch_depth {p.batch_depth}; one {what} takes {image.in_stride} of the "
            f"{p.input_blocks} input blocks and {image.out_stride} of the {p.output_words} "
            "output words)")
    if image.max_batch >= 2 and image_map_width(image) >= image.max_batch:
        line += ("; the driver runs each batch as one map (every layer a 1x1 conv over the "
                 "batch's samples: one fill and drain a layer per batch)")
    return line


cmd_compile.configure = _configure_compile


# --- simulate ----------------------------------------------------------------------------------


def _configure_simulate(p):
    p.add_argument("net", help="integer network (.npz) or program image (.spkimg)")
    _data_args(p)
    p.add_argument("--rtl", action="store_true",
                   help="also run the accelerator's RTL under Verilator (driver over the "
                        "simulated UART) and check it is bit-exact with the golden model")
    add_board_arg(p, None, f"--rtl: the simulated build (default {SIM_BOARD}, quick to simulate; "
                        "an image runs on its own build)")
    p.add_argument("--form", choices=["packed", "serial"], default="packed",
                   help="golden model form (identical results; serial is the hardware's order)")
    p.add_argument("--show", type=int, default=0, metavar="K",
                   help="print the outputs of the first K samples")
    p.add_argument("--plots", metavar="DIR",
                   help="write sparsity.png and raster.png (golden model) and, with --rtl, "
                        "cycles.png (measured cycles per layer) to DIR")
    p.add_argument("--out", metavar="FILE", help="--rtl: save the RTL's outputs, the golden "
                                                 "model's and the counters (.npz)")
    add_sim_args(p)


@command("simulate", "run a network on the golden model and optionally the accelerator RTL: "
                     "accuracy, spikes and cycles per layer", examples=(
                         "spikepack simulate net.npz --data digits",
                         "spikepack simulate net.npz --rtl --limit 40 --plots plots"))
def cmd_simulate(args) -> int:
    from sim.golden.model import run_network
    from sw.compile.targets import mode_name

    net, image_file = load_model(args.net)
    if args.board and not args.rtl:
        raise UserError("--board selects the build --rtl simulates; add --rtl (`spikepack "
                        "compile --board` checks the fit without simulating)")
    if args.out and not args.rtl:
        raise UserError("--out saves what the RTL returned; add --rtl")
    x, y, desc = _inputs(args, net)
    golden = run_network(net, x, form=args.form)
    print(f"{desc}, T={net.T}")
    print(f"golden model ({args.form} form): accuracy {_accuracy(golden.predictions(), y)}")
    sizes, wide = _sizes(net)
    print(f"{'layer':>5s}  {'size':>{wide}s}  {'mode':9s}  {'spikes/sample':>13s}  {'rate':>6s}")
    for i, (layer, r, size) in enumerate(zip(net.layers, golden.layers, sizes, strict=True)):
        rate = "-" if layer.readout else f"{r.spikes.mean() / (layer.n_out * net.T):.3f}"
        mode = mode_name(layer)
        print(f"{i:5d}  {size:>{wide}s}  {mode:9s}  {r.spikes.mean():13.1f}  {rate:>6s}")
    status, run = 0, None
    if args.rtl:
        params, name = _sim_params(args, image_file)
        print(f"RTL ({args.simulator}) of the accelerator, {name}: {params.describe()}")
        run = _run_rtl(args, net, image_file, params, name, x)
        print(f"upload: {run.upload_words} words in {run.upload_cycles} cycles over the "
              f"simulated UART ({run.baud / 1e6:g} Mbaud), {run.resends} resends")
        status = _report_run(net, x, y, run.outputs, _rtl_runs(run),
                             _image(net, params, image_file), run.clk_freq, args.show, args.out)
    elif args.show:
        for i in range(min(args.show, len(x))):
            print(f"  {i:4d}  {'' if y is None else f'label {y[i]}  '}pred "
                  f"{golden.predictions()[i]}  {golden.output[i]}")
    if args.plots:
        _simulate_plots(args.plots, net, x, y, golden, run)
    return status


def _simulate_plots(out_dir, net, x, y, golden, run):
    from sw.research import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [plots.sparsity(golden, net.T, out / "sparsity.png"),
               plots.raster(golden, x, net.T, out / "raster.png", labels=y)]
    if run is not None:
        written.append(plots.cycles_per_layer(run.cycles.sum(axis=0) / len(x),
                                              run.skipped.sum(axis=0) / len(x),
                                              out / "cycles.png"))
    for p in written:
        print(f"wrote {p}")


cmd_simulate.configure = _configure_simulate


# --- deploy ------------------------------------------------------------------------------------


_DEVICE_BOARD_HELP = (f"--sim: the simulated build (default {SIM_BOARD}; an image uses its own); "
                      "--port: the board whose UART rate to use")


def _configure_deploy(p):
    p.add_argument("model", help="integer network (.npz, compiled for the device's identify "
                                 "reply) or program image (.spkimg from `compile`)")
    _device_args(p, board_help=_DEVICE_BOARD_HELP)


@command("deploy", "identify the device (board or RTL simulation) and upload a model with "
                   "read-back verification", examples=(
                       "spikepack deploy net.spkimg --port /dev/ttyUSB1",
                       "spikepack deploy net_small.spkimg --sim"))
def cmd_deploy(args) -> int:
    import time

    from sw.host.driver import DeviceError

    net, image_file = load_model(args.model)
    if args.sim:
        params, name = _sim_params(args, image_file)
        run = _run_rtl(args, net, image_file, params, name, None)
        print(f"simulated device ({name}, {args.simulator}): {run.params.describe()}; link "
              f"{run.baud / 1e6:g} Mbaud at {run.clk_freq / 1e6:g} MHz")
        print(f"uploaded {run.upload_words} words in {run.upload_cycles} cycles "
              f"({1e3 * run.upload_cycles / run.clk_freq:.2f} ms simulated), {run.resends} "
              f"resends; {_VERIFIED}")
        print("the simulated device lasts for this command only: `spikepack infer --sim` "
              "uploads and runs in one session")
        return 0
    dev, info, params = _open_device(args)
    with dev.transport:
        image = _image_for_device(net, image_file, params, args.port)
        words = sum(len(w.words) for w in image.writes)
        t0 = time.monotonic()
        try:
            dev.load_image(image, verify=True, progress=not args.quiet)
        except DeviceError as e:
            raise UserError(f"upload to {args.port} failed: {e}") from None
        dt = time.monotonic() - t0
    print(f"uploaded {words} words in {dt:.2f} s ({4 * words / dt / 1e3:.1f} kB/s), "
          f"{dev.resends} resends; {_VERIFIED}")
    return 0


_VERIFIED = ("program memory read back and verified; weight, bias and threshold frames "
             "CRC-checked and acknowledged (those memories are write-only)")


def _image_for_device(net, image_file, params, port):
    if image_file is None:
        return _compile(net, params, f"the device on {port}")
    from hw.contract.memory_map import identity_mismatch

    why = identity_mismatch(params, image_file.image.params)
    if why:
        raise UserError(f"the image is compiled for {image_file.target or 'another build'}, not "
                        f"the device on {port} ({why}); recompile: spikepack compile NET --port "
                        f"{port} -o NET.spkimg (or deploy the .npz network)")
    return image_file.image


cmd_deploy.configure = _configure_deploy


# --- infer -------------------------------------------------------------------------------------


def _configure_infer(p):
    p.add_argument("model", help="integer network (.npz) or program image (.spkimg)")
    _data_args(p)
    _device_args(p, board_help=_DEVICE_BOARD_HELP)
    p.add_argument("--show", type=int, default=5, metavar="K",
                   help="print the outputs of the first K samples (default 5)")
    p.add_argument("--out", metavar="FILE",
                   help="save the device's outputs, the golden model's and the counters (.npz)")
    p.add_argument("--no-upload", action="store_true",
                   help="--port: the board already holds this model (`deploy`); its program "
                        "memory is read back and compared, then the inputs run")


@command("infer", "run inputs on the device (board or RTL simulation): accuracy, outputs, "
                  "counters, and whether it is bit-exact with the golden model", examples=(
                      "spikepack infer net.spkimg --port /dev/ttyUSB1 --data digits",
                      "spikepack infer net_small.spkimg --sim --limit 40",
                      "spikepack infer net.spkimg --port socket://localhost:7777 --no-upload"))
def cmd_infer(args) -> int:
    from sw.host.driver import DeviceError

    net, image_file = load_model(args.model)
    x, y, desc = _inputs(args, net)
    if args.sim:
        if args.no_upload:
            raise UserError("--no-upload needs a board (--port); a simulated device starts "
                            "empty, so --sim always uploads")
        params, name = _sim_params(args, image_file)
        print(f"{desc}, T={net.T}; simulated device ({name}, {args.simulator}): "
              f"{params.describe()}")
        run = _run_rtl(args, net, image_file, params, name, x)
        print(f"uploaded {run.upload_words} words; ran {len(x)} samples in "
              f"{len(run.total_cycles)} batches; {run.infer_cycles} cycles with the UART")
        return _report_run(net, x, y, run.outputs, _rtl_runs(run),
                           _image(net, params, image_file), run.clk_freq, args.show, args.out)
    dev, info, params = _open_device(args)
    with dev.transport:
        image = _image_for_device(net, image_file, params, args.port)
        try:
            if args.no_upload:
                _check_loaded(dev, image, args.port)
            else:
                dev.load_image(image, verify=True, progress=not args.quiet)
            result = dev.infer(image, x)
        except DeviceError as e:
            raise UserError(f"inference on {args.port} failed: {e}") from None
    print(f"{desc}, T={net.T}")
    runs = tuple(np.array([list(getattr(c, f)) for c in result.counters])
                 for f in ("cycles", "spikes", "skipped")) + (
        np.array([c.total_cycles for c in result.counters]),)
    return _report_run(net, x, y, result.outputs, runs, image,
                       info.link.clk_freq, args.show, args.out)


def _check_loaded(dev, image, port):
    program = next(w for w in image.writes if w.region == "PROGRAM")
    if dev.read_words(program.addr, len(program.words)) != list(program.words):
        raise UserError(f"the board on {port} holds another program; run `spikepack deploy` "
                        "first or drop --no-upload")


cmd_infer.configure = _configure_infer


# --- serve-sim ---------------------------------------------------------------------------------


def _configure_serve_sim(p):
    add_board_arg(p, None, f"the simulated build (default {SIM_BOARD})")
    p.add_argument("--tcp", type=int, default=7777, metavar="PORT",
                   help="TCP port on 127.0.0.1 to listen on (0: any free port; default 7777)")
    p.add_argument("--clients", type=int, default=0, metavar="N",
                   help="stop after serving N connections (default 0: until Ctrl-C)")
    p.add_argument("--idle-exit", type=float, default=600, metavar="S",
                   help="stop after S seconds without a connection (default 600)")
    add_sim_args(p, quiet=False)


@command("serve-sim", "run the accelerator RTL as a virtual board on a TCP port: every --port "
                      "command then works on it with --port socket://127.0.0.1:PORT",
         examples=("spikepack serve-sim --board small --tcp 7777",
                   "spikepack deploy net_small.spkimg --port socket://127.0.0.1:7777"))
def cmd_serve_sim(args) -> int:
    import sys

    from sim.rtl.runner import SimulatorMissing
    from sim.rtl.session import RtlSessionError, serve_rtl

    if not 0 <= args.tcp <= 65535:
        raise UserError(f"--tcp must be a port number in 0..65535, not {args.tcp}")
    tgt = target(args.board or SIM_BOARD)
    print(f"building the {args.simulator} model of {tgt.name} (cached after the first "
          "time) ...", flush=True)

    def listening(port):
        url = f"socket://127.0.0.1:{port}"
        print(f"virtual board ({tgt.name}): {tgt.params.describe()}", flush=True)
        print(f"listening on {url} -- e.g. spikepack deploy NET --port {url} --timeout 10",
              flush=True)

    try:
        serve_rtl(tgt.params, tcp_port=args.tcp, max_clients=args.clients,
                  idle_exit=args.idle_exit, simulator=args.simulator, build_dir=args.build_dir,
                  on_listen=listening)
    except (SimulatorMissing, RtlSessionError) as e:
        raise UserError(str(e)) from None
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    return 0


cmd_serve_sim.configure = _configure_serve_sim
