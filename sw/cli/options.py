"""Options and argument helpers that several ``spikepack`` commands share, each defined once.

Time steps, the simulator and its build directory, the board or build preset, the data set, and
loading an integer network or a program image given on the command line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sim.golden.packing import T_LIMIT

from .registry import UserError

DEFAULT_BOARD = "arty_a7"
SIM_BOARD = "small"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks and ends each option's help with its default.

    An option whose default is ``None`` or ``False`` (nothing given, a flag not set), or whose
    help already says its default, gets no suffix.
    """

    def _get_help_string(self, action):
        help = action.help or ""
        default = action.default
        if (not action.option_strings or default is None or default is False
                or default == argparse.SUPPRESS or "default" in help):
            return help
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{help} (default {shown})".replace("%", "%%").replace("%%(", "%(")


def time_steps(flag: str = "--T"):
    """argparse ``type`` for a T option: a whole number in ``1..T_LIMIT`` (the golden model's
    limit); the message names ``flag``."""
    def parse(text: str) -> int:
        try:
            T = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a whole number, not {text!r}") \
                from None
        if not 1 <= T <= T_LIMIT:
            raise argparse.ArgumentTypeError(f"{flag} must be in 1..{T_LIMIT}, not {T}")
        return T
    parse.__name__ = "time steps"
    return parse


def add_T(p, *, many: bool = False, flag: str = "--T", help: str = "time steps (bits per "
          "packed activation)", **kwargs) -> None:
    """``--T`` (one value, or one or more with ``many``), checked against ``T_LIMIT``."""
    p.add_argument(flag, type=time_steps(flag), metavar="T", help=f"{help}, 1..{T_LIMIT}",
                   **({"nargs": "+"} if many else {}), **kwargs)


def add_sim_args(p, *, quiet: bool = True) -> None:
    """``--simulator`` and ``--build-dir`` of the RTL simulation (and ``--quiet``)."""
    p.add_argument("--simulator", choices=["verilator", "icarus"], default="verilator",
                   help="RTL simulator (icarus is much slower)")
    p.add_argument("--build-dir", help="where the RTL model is built (default: build/ of the "
                                       "checkout or $SPIKEPACK_BUILD)")
    if quiet:
        p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_board_arg(p, default, what: str) -> None:
    """``--board NAME``: a board preset or a core build preset."""
    from sw.compile.targets import target_names

    p.add_argument("--board", default=default, metavar="NAME",
                   help=f"{what}: a board preset or core build preset, one of "
                        f"{', '.join(target_names())}")


def target(name):
    """The :class:`sw.compile.targets.Target` called ``name``, or a :class:`UserError`."""
    from sw.compile.targets import get_target

    try:
        return get_target(name)
    except KeyError as e:
        raise UserError(e.args[0]) from None


def add_split_args(p) -> None:
    """The data set of a train/test split (``--dataset``, ``--data-dir``, ``--seed``)."""
    from sw.train.datasets import dataset_arg, dataset_help

    p.add_argument("--dataset", default="digits", type=dataset_arg, metavar="NAME",
                   help=f"data set (default digits): {dataset_help()}")
    p.add_argument("--data-dir", help="directory with the files of mnist, fashion-mnist, cifar10")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/test split")


def load_split(args):
    """The train/test split named by :func:`add_split_args`' options."""
    from sw.train.data import load_split as _load_split

    return _load_split(args.dataset, seed=args.seed, data_dir=getattr(args, "data_dir", None))


def load_net(path):
    """An integer network file (``.npz``), or a :class:`UserError` saying what to give."""
    from sim.golden.ir import IntNetwork

    if not Path(path).exists():
        raise UserError(f"integer network {path} does not exist (make one with `spikepack "
                        "quantize` or `spikepack train --out`)")
    try:
        return IntNetwork.load(path)
    except (KeyError, OSError) as e:
        raise UserError(f"{path} is not an integer network file ({e})") from e


def load_model(path):
    """``(net, image_file or None)`` from an integer network or a program image."""
    from sw.compile.image_file import ImageFileError, is_image_file, load_image_file

    p = Path(path)
    if not p.exists():
        raise UserError(f"{path} does not exist (give an integer network .npz from `spikepack "
                        "train --out`/`quantize`/`import-nir`, or an image from `compile`)")
    if not is_image_file(p):  # a damaged file is refused by the network loader, with the reason
        return load_net(p), None
    try:
        image_file = load_image_file(p)
    except ImageFileError as e:
        raise UserError(str(e)) from e
    return image_file.net, image_file
