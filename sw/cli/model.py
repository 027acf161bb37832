"""``spikepack`` commands that work on models and integer networks (no device needed)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .options import add_split_args, add_T, load_net, load_split
from .registry import UserError, command

# --- convert -----------------------------------------------------------------------------------


def _configure_convert(p):
    p.add_argument("--ann", required=True,
                   help="float ANN model file (.pt from `train --save-dir`)")
    add_T(p, default=4, help="time steps of the SpikePack model")
    p.add_argument("--percentile", type=float, default=99.9,
                   help="activation percentile mapped to the top level (ReLU ANNs)")
    p.add_argument("--out", required=True, help="SpikePack model file to write (.pt)")
    add_split_args(p)


@command("convert", "convert a float ANN (ReLU or ClipFloor) to a SpikePack model", examples=(
    "spikepack convert --ann models/ann.pt --T 4 --out conv.pt",))
def cmd_convert(args) -> int:
    from sw.train.model_io import load_model, save_model
    from sw.train.models import calibrate_thresholds, spikepack_from_ann
    from sw.train.train import accuracy, as_tensor, predict

    ann, meta = load_model(args.ann)
    if meta["kind"] != "ann":
        raise UserError(f"{args.ann} is a {meta['kind']} model, not an ANN")
    split = load_split(args)
    x_tr, x_te = split.packed(args.T)
    snn = spikepack_from_ann(ann, args.T)
    if meta["activation"] == "relu":
        calibrate_thresholds(snn, as_tensor(x_tr), args.percentile)
    save_model(snn, args.out)
    print(f"ANN accuracy {100 * accuracy(predict(ann, split.x_test), split.y_test):.2f}%  ->  "
          f"SpikePack T={args.T} {100 * accuracy(predict(snn, x_te), split.y_test):.2f}% "
          f"(float, test split); wrote {args.out}")
    return 0


cmd_convert.configure = _configure_convert


# --- quantize ----------------------------------------------------------------------------------


def _configure_quantize(p):
    p.add_argument("--model", required=True, help="SpikePack model file (.pt)")
    p.add_argument("--weight-bits", type=int, default=8, help="2..8")
    p.add_argument("--per-layer-theta", action="store_true",
                   help="one threshold per layer instead of per output channel")
    p.add_argument("--out", required=True, help="integer network to write (.npz)")
    add_split_args(p)


@command("quantize", "quantize a SpikePack model to an integer network and report the rounding",
         examples=("spikepack quantize --model conv.pt --out conv.npz",))
def cmd_quantize(args) -> int:
    from sim.golden.model import run_network
    from sw.compile.quantize import quantize_spikepack
    from sw.train.model_io import load_model
    from sw.train.train import accuracy, predict

    model, meta = load_model(args.model)
    if meta["kind"] != "spikepack":
        raise UserError(f"{args.model} is an ANN; `spikepack convert` it first")
    net, report = quantize_spikepack(model, weight_bits=args.weight_bits,
                                     per_channel=not args.per_layer_theta)
    split = load_split(args)
    _, x = split.packed(net.T)
    fa = accuracy(predict(model, x), split.y_test)
    ia = accuracy(run_network(net, x).predictions(), split.y_test)
    net.save(args.out)  # after the golden run: a network it refuses is not written
    print(report.table())
    print(f"accuracy on the {split.name} test split: float {100 * fa:.2f}%, integer (golden) "
          f"{100 * ia:.2f}% ({100 * (ia - fa):+.2f}); wrote {args.out}")
    return 0


cmd_quantize.configure = _configure_quantize


# --- eval --------------------------------------------------------------------------------------


def _configure_eval(p):
    p.add_argument("net", help="integer network (.npz)")
    add_split_args(p)
    p.add_argument("--form", choices=["packed", "serial"], default="packed",
                   help="golden model form (identical results; serial is the hardware's order)")


@command("eval", "evaluate an integer network with the golden model: accuracy and spikes per "
                 "layer", examples=("spikepack eval net.npz",))
def cmd_eval(args) -> int:
    from sim.golden.model import run_network

    net = load_net(args.net)
    split = load_split(args)
    if split.n_features != net.n_in:
        raise UserError(f"the network takes {net.n_in} inputs; {split.name} has "
                        f"{split.n_features} features")
    _, x = split.packed(net.T)
    res = run_network(net, x, form=args.form)
    acc = float(np.mean(res.predictions() == split.y_test))
    print(f"{split.name} test split: {len(x)} samples, T={net.T}, accuracy {100 * acc:.2f}%")
    print(f"input spikes per sample {res.input_spikes.mean():.1f}")
    for i, (layer, r) in enumerate(zip(net.layers, res.layers, strict=True)):
        kind = "readout" if layer.readout else f"{r.spikes.mean():.1f} spikes/sample, rate " \
               f"{r.spikes.mean() / (layer.n_out * net.T):.3f}"
        print(f"  layer {i}: {layer.n_in}->{layer.n_out} {layer.mode.value}: {kind}")
    return 0


cmd_eval.configure = _configure_eval


# --- report ------------------------------------------------------------------------------------


def _configure_report(p):
    p.add_argument("--out-dir", required=True, help="directory for the PNG plots")
    p.add_argument("--train-json", help="`train --json` output: plot accuracy vs T")
    p.add_argument("--net", help="integer network: plot firing rates and a spike raster")
    p.add_argument("--model", help="SpikePack model (.pt): plot quantization error per layer")
    add_split_args(p)


@command("report", "plot accuracy vs T, per-layer sparsity, spike rasters, quantization error",
         examples=("spikepack report --out-dir plots --train-json train.json --net net.npz "
                   "--model models/spikepack_T4.pt",))
def cmd_report(args) -> int:
    from sim.golden.model import run_network
    from sw.research import plots

    if not (args.train_json or args.net or args.model):
        raise UserError("give at least one of --train-json, --net, --model")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if args.train_json:
        try:
            runs = json.loads(Path(args.train_json).read_text())["runs"]
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{args.train_json} is not a `spikepack train --json` file "
                            f"({e.__class__.__name__}: {e}); write one with train --json") from None
        written.append(plots.accuracy_vs_T(runs, out / "accuracy_vs_T.png"))
    split = load_split(args) if (args.net or args.model) else None
    if args.net:
        net = load_net(args.net)
        _, x = split.packed(net.T)
        res = run_network(net, x)
        written.append(plots.sparsity(res, net.T, out / "sparsity.png"))
        written.append(plots.raster(res, x, net.T, out / "raster.png", labels=split.y_test))
    if args.model:
        written.append(_quantization_plot(args.model, split, out / "quantization_error.png"))
    for p in written:
        print(f"wrote {p}")
    return 0


def _quantization_plot(model_path, split, path):
    import torch

    from sim.golden.model import run_network
    from sw.compile.quantize import quantize_spikepack
    from sw.research import plots
    from sw.train.model_io import load_model
    from sw.train.neurons import SpikePack

    model, meta = load_model(model_path)
    if meta["kind"] != "spikepack":
        raise UserError(f"{model_path} is an ANN; quantization error needs a SpikePack model")
    net, _ = quantize_spikepack(model)
    _, x = split.packed(net.T)
    float_steps, h = [], torch.as_tensor(x, dtype=torch.float32)
    with torch.no_grad():
        for m in model:
            if isinstance(m, SpikePack):
                float_steps.append((h / m.theta.abs()).numpy())
            h = m(h)
    res = run_network(net, x)
    int_steps = [r.membrane / layer.theta_vector
                 for layer, r in zip(net.layers, res.layers, strict=True) if not layer.readout]
    return plots.quantization_error(float_steps, int_steps, path)


cmd_report.configure = _configure_report


# --- import-nir --------------------------------------------------------------------------------


def _configure_import_nir(p):
    p.add_argument("graph", help="NIR graph file (.nir, written by nir.write / an exporter)")
    add_T(p, required=True, help="time steps to run")
    p.add_argument("--dt", type=float, help="the graph's time step, required by IF and "
                   "finite-tau LIF nodes (NIR does not store it; snnTorch exports use 1e-4)")
    p.add_argument("--discretization", choices=["euler", "exp"],
                   help="how a finite-tau LIF was stepped: beta = 1 - dt/tau (euler: snnTorch) "
                        "or exp(-dt/tau) (exp: sinabs, Norse); required by such nodes")
    p.add_argument("--reset", choices=["zero", "subtract"],
                   help="what a spike does (required with LIF/IF nodes: NIR's v_reset = 0 is "
                        "also what snnTorch writes for reset by subtraction)")
    p.add_argument("--reset-delay", action=argparse.BooleanOptionalAction, default=None,
                   help="with --reset subtract: snnTorch's reset_delay (its default is True)")
    p.add_argument("--allow-leak-rounding", action="store_true",
                   help="round a leak beta to the nearest 1 - 2^-k instead of refusing")
    p.add_argument("--input-shape", type=_input_shape, metavar="C,H,W",
                   help="the input image's shape when the graph's Input node does not store it "
                        "(a graph starting with a Conv2d needs it), e.g. 1,8,8")
    p.add_argument("--out", required=True, help="integer network to write (.npz)")


def _input_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(n) for n in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not C,H,W (or N) of positive integers, "
                                         "e.g. 1,8,8")
    return shape


@command("import-nir", "import a NIR graph (Affine/Linear/Conv2d + LIF/IF/Threshold, "
                       "SumPool2d/AvgPool2d and Flatten between) as an integer LIF-mode network",
         examples=(
             "spikepack import-nir snn.nir --T 6 --reset zero --out snn.npz",
             "spikepack import-nir lif.nir --T 8 --dt 1e-4 --discretization euler "
             "--reset subtract --reset-delay --out lif.npz",
             "spikepack import-nir cnn.nir --T 4 --reset zero --input-shape 1,8,8 "
             "--out cnn.npz"))
def cmd_import_nir(args) -> int:
    from sw.compile.nir_import import import_nir

    if not Path(args.graph).exists():
        raise UserError(f"graph file {args.graph} does not exist")
    try:
        net, report = import_nir(args.graph, args.T, dt=args.dt, reset=args.reset,
                                 reset_delay=args.reset_delay,
                                 discretization=args.discretization,
                                 allow_leak_rounding=args.allow_leak_rounding,
                                 input_shape=args.input_shape)
    except OSError as e:  # h5py: empty, truncated or not an HDF5 file
        raise UserError(f"{args.graph} is not a readable NIR graph file ({e}); write one with "
                        "nir.write or an exporter such as snntorch.export_to_nir") from None
    net.save(args.out)
    print(report.table())
    print(f"{report.summary()}; wrote {args.out}")
    return 0


cmd_import_nir.configure = _configure_import_nir
