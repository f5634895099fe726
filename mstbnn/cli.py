"""Command-line entry point: ``mstbnn COMMAND ...`` (also ``python -m mstbnn``).

Each stage registers its own commands through ``add_commands(subparsers)`` in
its ``cli`` module; heavy imports (torch, amaranth) happen inside the command
handlers so ``mstbnn --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mstbnn import __version__
from mstbnn.errors import Terminated, UserError, sigterm_unwinds

# Order is the order of the flow; `--help` lists commands in this order.
_COMMAND_MODULES = (
    "mstbnn.nn.cli",
    "mstbnn.flow",
    "mstbnn.hw.cli",
    "mstbnn.sim.cli",
    "mstbnn.prove.cli",
    "mstbnn.boards.cli",
    "mstbnn.sweep",
    "mstbnn.report",
)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are the one ``mstbnn: error:`` line every refusal uses.

    ``add_subparsers`` builds every subcommand's parser with this class too.
    """

    def error(self, message: str):
        command = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        where = f"{command}: " if command else ""
        self.exit(2, f"mstbnn: error: {where}{message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mstbnn",
        description="Binary neural networks on FPGAs with MST-based channel reuse.",
    )
    parser.add_argument("--version", action="version", version=f"mstbnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # stage without commands yet
                continue
            raise
        module.add_commands(sub)
    parser.commands = sub.choices  # name -> subparser, for errors found after parsing
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # reported by the subcommand, so its line names the command and its --help
            getattr(parser, "commands", {}).get(getattr(args, "command", None), parser).error(
                f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # a usage error (exit 2, its line already printed), --help or --version (0)
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with sigterm_unwinds():  # a `kill` takes the running tool (yosys, nextpnr, Verilator) with it
            result = args.func(args)
    except UserError as exc:
        print(f"mstbnn: error: {exc}", file=sys.stderr)
        return 2
    except Terminated:  # the whole process ends, also when main() was called in-process (a benchmark)
        print("mstbnn: terminated", file=sys.stderr)
        raise SystemExit(143) from None
    except KeyboardInterrupt:
        print("mstbnn: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
