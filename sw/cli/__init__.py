"""The ``spikepack`` command line: one module per group of commands.

``registry`` (how commands register, :class:`UserError`), ``options`` (options shared by several
commands: T, data, board, simulator), ``train`` (train, results), ``model`` (convert, quantize,
import-nir, eval, report), ``device`` (compile, simulate, deploy, infer, serve-sim) and ``main``
(the parser and entry point).
"""

from .main import build_parser, command_names, main
from .registry import COMMANDS, EXAMPLES, UserError, command

__all__ = ["main", "build_parser", "command_names", "COMMANDS", "EXAMPLES", "UserError",
           "command"]
