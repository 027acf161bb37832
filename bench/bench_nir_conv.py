"""A trained snnTorch CNN through NIR into the integer network: accuracy and spike agreement.

    python bench/bench_nir_conv.py [--epochs 8] [--grid 8] [--seed 0]

Trains a small snnTorch CNN on the 8x8 digits (conv 3x3 p1 1->8, Leaky, AvgPool2d(2), conv 3x3 s2
p1 8->16, Leaky, Flatten, Linear 64->10; beta 0.5, reset by subtraction, snnTorch's defaults;
inputs are the digits' T = 4 bit-plane spike trains), exports it with
``snntorch.export_to_nir``, imports it with ``sw.compile.nir_import.import_nir`` and runs the
integer network in the golden model. Prints, for the trained (off-grid) weights and for the same
weights snapped to the ``1/grid`` grid: the importer's verdict, snnTorch's and the golden model's
test accuracy, the fraction of test digits whose every spike (per hidden layer) and readout sum
agree, and the fraction of single spikes that agree. Exits 1 if the importer says ``exact`` and
anything differs. (The exactness test is a sufficient condition: a layer the importer calls
approximate, e.g. for the leak's finer grid, may still agree on every digit; the figures say.)
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

T = 4


def build(torch, snn):
    nn = torch.nn

    def leaky(shape):
        return snn.Leaky(beta=torch.full(shape, 0.5), threshold=torch.ones(shape),
                         init_hidden=True)

    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), leaky((8, 8, 8)), nn.AvgPool2d(2),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), leaky((16, 2, 2)),
                         nn.Flatten(), nn.Linear(64, 10))


def run(torch, snn, net, planes, grad=False):
    """snnTorch's simulation: per Leaky the spikes (T, N, ...), and the readout summed over T."""
    for m in net:
        if isinstance(m, snn.Leaky):
            m.reset_mem()
    spikes, total = [], 0
    with torch.set_grad_enabled(grad):
        for t in range(planes.shape[0]):
            x = torch.as_tensor(planes[t], dtype=torch.float32)
            per = []
            for m in net:
                x = m(x)
                if isinstance(m, snn.Leaky):
                    per.append(x)
            spikes.append(per)
            total = total + x
    return [torch.stack([s[i] for s in spikes]) for i in range(len(spikes[0]))], total


def evaluate(torch, snn, net, x, y, label, **conv):
    from snntorch.export_nir import export_to_nir

    from sim.golden.model import run_network
    from sim.golden.packing import unpack_bitplanes
    from sw.compile.nir_import import import_nir

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = export_to_nir(net, torch.zeros(1, 1, 8, 8), ignore_dims=[0])
    inet, report = import_nir(graph, T, **conv)
    golden = run_network(inet, x)
    theirs, total = run(torch, snn, net, unpack_bitplanes(x, T))
    theirs = [s.numpy().astype(np.int64) for s in theirs]
    total = total.numpy().astype(np.float64)
    digits, single = [], []
    for li, s in enumerate(theirs):
        ours = unpack_bitplanes(golden.layers[li].output, T)
        digits.append(float(np.all(ours == s, axis=tuple(range(2, s.ndim))).mean()))
        single.append(float((ours == s).mean()))
    steps = np.asarray(report.layers[-1].steps)
    digits.append(float(np.all(golden.output * steps == total, axis=1).mean()))
    acc_snn = float((total.argmax(1) == y).mean())
    acc_int = float((golden.output.argmax(1) == y).mean())
    print(f"\n== {label}\n{report.table()}\n{report.summary()}")
    print(f"test accuracy: snnTorch {acc_snn:.4f}, imported integer network {acc_int:.4f}; "
          f"argmax agreement {float((golden.output.argmax(1) == total.argmax(1)).mean()):.4f}")
    print(f"digits whose every spike agrees, per hidden layer, then readout sums: "
          f"{[round(a, 4) for a in digits]}")
    print(f"single spikes that agree, per hidden layer: {[round(a, 5) for a in single]}")
    return report.exact, digits


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--grid", type=int, default=8, help="snap weights to multiples of 1/GRID")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import snntorch as snn
    import torch

    from sim.golden.packing import unpack_bitplanes
    from sw.compile.nir_import import SNNTORCH_DT
    from sw.train.data import load_digits_split

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    split = load_digits_split(args.seed)
    x_train, x_test = (a.reshape(-1, 1, 8, 8) for a in split.packed(T))
    y_train, y_test = split.y_train, split.y_test
    net = build(torch, snn)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        for idx in np.array_split(rng.permutation(len(x_train)), len(x_train) // 64):
            _, total = run(torch, snn, net, unpack_bitplanes(x_train[idx], T), grad=True)
            loss = torch.nn.functional.cross_entropy(total, torch.as_tensor(y_train[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    print(f"trained {args.epochs} epochs on {len(x_train)} digits in "
          f"{time.perf_counter() - t0:.1f} s (seed {args.seed})")
    conv = dict(dt=SNNTORCH_DT, discretization="euler", reset="subtract", reset_delay=True)
    evaluate(torch, snn, net, x_test, y_test, "trained weights (off the grid)", **conv)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.round(p * args.grid) / args.grid)
    exact, digits = evaluate(torch, snn, net, x_test, y_test,
                             f"weights snapped to the 1/{args.grid} grid", **conv)
    if exact and digits != [1.0] * len(digits):
        print("FAIL: the importer said exact but the integer network departs from snnTorch")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
