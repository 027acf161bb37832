"""How ``spikepack`` sub-commands are registered, and the one error a user can fix.

Each command module registers ``fn(args)`` with :func:`command`; ``fn.configure(parser)`` adds its
arguments. :mod:`sw.cli.main` builds the parser from :data:`COMMANDS`.
"""

from __future__ import annotations

COMMANDS: dict = {}
EXAMPLES: dict[str, tuple[str, ...]] = {}

#: The order ``spikepack --help`` lists the commands in: the way from data to the board.
PIPELINE = ("train", "convert", "quantize", "import-nir", "eval", "report", "compile", "simulate",
            "deploy", "infer", "serve-sim", "results")


def command(name: str, help: str, examples: tuple[str, ...] = ()):
    """Register ``fn(args)`` as sub-command ``name``; ``fn.configure(parser)`` adds arguments.

    ``examples`` are command lines shown under ``--help`` (tests parse every one of them).
    """
    def register(fn):
        COMMANDS[name] = (fn, help)
        EXAMPLES[name] = tuple(examples)
        return fn
    return register


class UserError(Exception):
    """An error the user can fix; printed as one line, exit status 2."""
