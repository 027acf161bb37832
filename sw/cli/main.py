"""The ``spikepack`` entry point: the parser built from every registered command, and ``main``.

Errors a user can fix (bad arguments, missing files, a model that does not fit) print one line and
exit with status 2.
"""

from __future__ import annotations

import argparse
import re
import sys

from .options import HelpFormatter
from .registry import COMMANDS, EXAMPLES, PIPELINE, UserError

# --- entry point -------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        # "argument --T: --T must be ..." -> "--T must be ..." (the check names its option)
        message = re.sub(r"^argument (\S+): (?=\1 )", "", message)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _register_all() -> None:
    """Import the modules whose @command functions fill :data:`COMMANDS`."""
    from . import device, model, sweep, train  # noqa: F401


def command_names() -> list[str]:
    """Every sub-command, sorted (imports the modules that register them)."""
    _register_all()
    return sorted(COMMANDS)


def build_parser() -> argparse.ArgumentParser:
    _register_all()
    parser = _Parser(prog="spikepack", description="SpikePack SNN accelerator co-design tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    order = {name: i for i, name in enumerate(PIPELINE)}
    for name, (fn, help) in sorted(COMMANDS.items(), key=lambda c: order.get(c[0], len(order))):
        examples = EXAMPLES.get(name, ())
        epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples) if examples else None
        p = sub.add_parser(name, help=help, description=help, epilog=epilog,
                           formatter_class=HelpFormatter)
        fn.configure(p)
        p.set_defaults(func=fn)
    return parser


def main(argv=None) -> int:
    from sim.golden.ir import AccumulatorOverflowError

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error argparse printed as one line (2)
        return e.code
    try:
        return args.func(args) or 0
    except (UserError, OSError, ValueError, TypeError, AccumulatorOverflowError) as e:
        message = " ".join(str(e).split())  # one line, whatever the message
        print(f"spikepack {args.command}: error: {message}", file=sys.stderr)
        return 2

