"""The ``spikepack`` command run in the test's own process (shared by the CLI tests here)."""

from __future__ import annotations

from sw.cli import main


def run_cli(argv, capsys):
    """``(exit status, stdout, stderr)`` of ``spikepack ARGV``; argparse's exits count too."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err
