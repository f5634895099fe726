"""Verilog output of the unrolled engine, plus a JSON description of its ports.

``generate(net, out_dir)`` writes ``out_dir/rtl/<top>.v`` and
``out_dir/rtl/<top>.json``; the JSON holds what simulation and board builds
need without importing the generator: port names and widths, latency,
initiation interval, resource estimates, options.

Output is byte-identical across runs for the same network and options:
Amaranth's built-in yosys is forced (``AMARANTH_USE_YOSYS=builtin``) and
nothing time- or path-dependent is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from mstbnn.artefact import TOP_NAME, atomic_write, rtl_dir
from mstbnn.errors import UserError

__all__ = ["generate", "TOP_NAME", "describe", "port_description", "write_rtl", "builtin_yosys"]


@contextlib.contextmanager
def builtin_yosys():
    """Amaranth's bundled yosys while inside: reproducible Verilog whatever $YOSYS says."""
    old = os.environ.get("AMARANTH_USE_YOSYS")
    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    try:
        yield
    finally:
        if old is None:
            del os.environ["AMARANTH_USE_YOSYS"]
        else:
            os.environ["AMARANTH_USE_YOSYS"] = old


def port_description(engine) -> dict:
    """What every engine's JSON holds: top-level ports, widths and the cycle model."""
    return {
        "top": TOP_NAME,
        "reuse": engine.reuse,
        "clock": "clk",
        "reset": "rst",
        "ports": {
            "in_valid": 1,
            "in_ready": 1,
            "in_data": engine.input_values * engine.input_width,
            "out_valid": 1,
            "out_ready": 1,
            "out_class": engine.class_width,
            "out_scores": engine.classes * engine.score_width,
        },
        "input_width": engine.input_width,
        "input_signed": engine.input_signed,
        "input_values": engine.input_values,
        "beats_per_image": engine.beats_per_image,
        "classes": engine.classes,
        "score_width": engine.score_width,
        "latency": engine.latency,
        "initiation_interval": engine.initiation_interval,
    }


def describe(engine) -> dict:
    """Port widths, cycle model and estimates of a built engine, as plain data."""
    return dict(
        port_description(engine),
        stage_depths=engine.stage_depths,
        estimate={family: engine.resource_estimate(family) for family in ("ice40", "ecp5")},
    )


def write_rtl(engine, desc: dict, rtl: Path, before_spec=None) -> Path:
    """Convert ``engine`` to Verilog and write it with its spec ``desc`` into ``rtl``; return the .v path.

    The spec goes last and records the Verilog's sha256 (``verilog_sha256``),
    so a generation interrupted at any moment leaves either the old pair or a
    spec that does not match its Verilog (refused by
    :func:`mstbnn.hw.spec.load_spec`). ``before_spec(rtl)`` writes any other
    file of the engine (a pass's network) before the spec.
    """
    from mstbnn.hw.hierarchy import convert_hierarchical

    with builtin_yosys():
        # One Verilog module per stage (mstbnn_top_stage0, ...), their parts flattened into them.
        text = convert_hierarchical(engine, TOP_NAME, keep_depth=1)
    try:
        rtl.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{rtl}: cannot create the output directory ({exc.strerror}); choose a writable DIR") from None
    vpath = rtl / f"{TOP_NAME}.v"
    atomic_write(vpath, text)
    if before_spec is not None:
        before_spec(rtl)
    desc = dict(desc, verilog_sha256=hashlib.sha256(text.encode()).hexdigest())
    atomic_write(rtl / f"{TOP_NAME}.json", json.dumps(desc, indent=1, sort_keys=True) + "\n")
    return vpath


def generate(net, out_dir, *, reuse: bool = True, subdir: str | None = None, **options) -> Path:
    """Write the engine's Verilog and its JSON description, for an in-memory network.

    The spec records no network digest, so the CLI steps refuse it; an
    artefact's engine comes from :func:`mstbnn.hw.spec.generate`.

    Parameters
    ----------
    net : Network
    out_dir : path
        Files go to ``out_dir/rtl/`` (``out_dir/rtl-baseline/`` when
        ``reuse=False``, unless ``subdir`` is given).
    reuse : bool
        False generates the plain baseline (every channel a root).
    **options :
        Passed to :class:`~mstbnn.hw.network.NetworkEngine`.

    Returns
    -------
    Path
        The Verilog file.
    """
    from mstbnn.hw.spec import EngineSpec, build_engine, write_engine

    spec = EngineSpec("unrolled", reuse, options)
    return write_engine(build_engine(net, spec), spec, Path(out_dir) / subdir if subdir else rtl_dir(out_dir, not reuse))
