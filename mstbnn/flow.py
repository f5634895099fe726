"""Commands that span stages: ``compile`` (a trained model or IR -> artefact).

The stage packages only ever import downstream-to-upstream in one direction
(nn -> compiler -> hw -> sim, boards). Turning a torch checkpoint into an IR
needs nn, so the ``compile`` command lives here, above the stages.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from mstbnn.errors import UserError

__all__ = ["load_model", "compile_model", "add_commands"]

TESTSET = "testset.npz"


def load_model(path) -> tuple:
    """Read MODEL: a torch checkpoint (.pt) or an IR artefact (dir or network.json).

    Returns (network, testset) where testset is a dict with ``x`` and ``y``
    (raw integer inputs and labels) when the model records its dataset, else None.
    """
    from mstbnn.compiler import io

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or directory; give a model.pt from `mstbnn train` or a compiled artefact")
    if path.suffix == ".pt":
        from mstbnn.nn.export import load_checkpoint

        result = load_checkpoint(path)
        return result if isinstance(result, tuple) else (result, None)
    net = io.load(path)
    root = path if path.is_dir() else path.parent
    testset = None
    if (root / TESTSET).is_file():
        import numpy as np

        with np.load(root / TESTSET) as f:
            testset = {"x": f["x"], "y": f["y"]}
    return net, testset


def compile_model(model, out_dir, *, reuse=True, max_depth=None, negation=False, log=print):
    """Schedule MODEL's binary layers and write the artefact to ``out_dir``.

    Returns the scheduled :class:`~mstbnn.compiler.ir.Network`.
    """
    import numpy as np

    from mstbnn.compiler import io
    from mstbnn.compiler.compile import schedule_network
    from mstbnn.compiler.cost import format_table, network_cost
    from mstbnn.compiler.execute import run

    net, testset = load_model(model)
    if max_depth is not None and max_depth < 0:
        raise UserError(f"--max-depth must be >= 0, got {max_depth}")
    scheduled = schedule_network(net, reuse=reuse, max_depth=max_depth, negation=negation)
    if testset is not None:
        # A compiled artefact must compute exactly what it was compiled from.
        direct = run(net, testset["x"]).classes
        reuse_classes = run(scheduled, testset["x"], mode="reuse").classes
        if not np.array_equal(direct, reuse_classes):  # pragma: no cover - would be a compiler bug
            raise RuntimeError("reuse executor disagrees with direct executor on the test set")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a directory; choose another -o")
    io.save(scheduled, out_dir, stats=network_cost(scheduled))
    if testset is not None:
        tmp = out_dir / (TESTSET + ".tmp.npz")
        np.savez(tmp, x=testset["x"], y=testset["y"])
        tmp.replace(out_dir / TESTSET)
    log(format_table(scheduled))
    return scheduled


def _cmd_compile(args) -> int:
    compile_model(
        args.model,
        args.output,
        reuse=not args.no_reuse,
        max_depth=args.max_depth,
        negation=args.negation,
    )
    print(f"wrote {Path(args.output) / 'network.json'}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compile",
        help="turn a trained model (.pt) or an IR into a scheduled artefact directory",
        description="Build a minimum-height MST schedule for every binary layer and write the artefact "
        "(DIR/network.json + DIR/network.npz), printing a per-layer cost table.",
    )
    p.add_argument("model", help="model.pt from `mstbnn train`, or an artefact directory / network.json")
    p.add_argument("-o", "--output", required=True, help="artefact directory to write")
    p.add_argument("--max-depth", type=int, default=None, metavar="H", help="limit tree height to H levels")
    p.add_argument("--negation", action="store_true", help="allow negation edges (weight min(d, N - d))")
    p.add_argument("--no-reuse", action="store_true", help="plain schedule: every channel a root (baseline)")
    p.set_defaults(func=_cmd_compile)
