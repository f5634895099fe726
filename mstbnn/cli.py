"""Command-line entry point: ``mstbnn COMMAND ...`` (also ``python -m mstbnn``).

Each stage registers its own commands through ``add_commands(subparsers)`` in
its ``cli`` module; heavy imports (torch, amaranth) happen inside the command
handlers so ``mstbnn --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from mstbnn import __version__
from mstbnn.errors import UserError

# Order is the order of the flow; `--help` lists commands in this order.
_COMMAND_MODULES = (
    "mstbnn.nn.cli",
    "mstbnn.flow",
    "mstbnn.hw.cli",
    "mstbnn.sim.cli",
    "mstbnn.prove.cli",
    "mstbnn.boards.cli",
    "mstbnn.report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    return parser


def main(argv: list[str] | None = None) -> int:
    # Resource estimates build Amaranth components only to count them; their
    # "created but never used" warnings are noise to a user.
    warnings.filterwarnings("ignore", message=".*created but never used")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except UserError as exc:
        print(f"mstbnn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mstbnn: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
