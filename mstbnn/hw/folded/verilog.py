"""Verilog output of the folded engine (``mstbnn verilog DIR --engine folded``).

:func:`generate` writes ``<top>.v`` and ``<top>.json`` into a directory. The
JSON describes the design for the simulator (:meth:`mstbnn.sim.design.Design.from_hw_json`
reads the same keys as for the unrolled engine) plus the folded engine's
figures: S and G per layer, cycles per window, storage bits, the resource
estimate. Same artefact and options -> the same bytes (Amaranth's builtin
yosys, no source locations).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

__all__ = ["generate", "top_name"]


def top_name(reuse: bool) -> str:
    return "mstbnn_folded" if reuse else "mstbnn_folded_baseline"


@contextlib.contextmanager
def _builtin_yosys():
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


def generate(net, out_dir, *, reuse: bool = True, config=None, device=None) -> dict:
    """Write the folded engine of ``net`` as Verilog.

    Parameters
    ----------
    net : Network
        Compiled network (schedules needed when ``reuse``).
    out_dir : path
        Created if missing.
    reuse : bool
        False: the plain baseline from the same generator.
    config : None, (S, G) or list of (S, G)
        S and G per binary layer; see :func:`mstbnn.hw.folded.network.layer_plans`.
    device : Device or None
        Choose S and G (and, with reuse, the cheaper of the XNOR-weighted and
        cycle-weighted trees) for this device (an object with name, family,
        luts, ffs, bram, e.g. :func:`mstbnn.boards.devices.get_device`) with
        :func:`mstbnn.hw.folded.estimate.choose_config`; overrides ``config``.

    Returns
    -------
    dict
        The design description written to ``<top>.json``.
    """
    from amaranth.back import verilog

    from mstbnn.hw.folded.estimate import choose_config
    from mstbnn.hw.folded.network import FoldedNetworkEngine

    if device is not None:
        net, config, _ = choose_config(net, device, reuse=reuse)
    engine = FoldedNetworkEngine(net, reuse=reuse, config=config)
    top = top_name(reuse)
    with _builtin_yosys():
        text = verilog.convert(engine, name=top, emit_src=False)
    family = device.family if device is not None else "ecp5"
    est = engine.resource_estimate(family)
    desc = {
        "top": top,
        "engine": "folded",
        "input_width": engine.input_width,
        "input_signed": engine.input_signed,
        "input_values": engine.input_values,
        "beats_per_image": engine.beats_per_image,
        "score_width": engine.score_width,
        "classes": engine.classes,
        "latency": engine.latency,
        "initiation_interval": engine.initiation_interval,
        "reuse": engine.reuse,
        "options": {"config": [list(c) for c in engine.config], "device": device.name if device is not None else None},
        "window_cycles": engine.window_cycles,
        "storage_bits": engine.storage_bits,
        "estimate": {"family": family, **{k: est[k] for k in ("luts", "carry", "ffs", "bram")}},
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Write to temporaries first: nothing half-written is left if a step fails.
    for name, body in ((f"{top}.v", text), (f"{top}.json", json.dumps(desc, indent=1, sort_keys=True) + "\n")):
        tmp = out / (name + ".tmp")
        tmp.write_text(body)
        os.replace(tmp, out / name)
    return desc
