"""Verilog output of the folded engine (for ``mstbnn verilog DIR --engine folded``).

Mirrors :func:`mstbnn.hw.verilog.generate`: ``generate(net, out_dir)`` writes
``out_dir/rtl-folded/mstbnn_top.v`` and ``mstbnn_top.json``
(``rtl-folded-baseline/`` for the plain baseline, or ``out_dir/<subdir>/``).
The JSON is the engine spec (:mod:`mstbnn.hw.spec`): the unrolled engine's
keys (ports, widths, latency, initiation interval, estimates per family), so
:meth:`mstbnn.sim.design.Design.from_hw_json` reads it unchanged, plus the
folded figures: cycles per window, stored bits and block RAMs.

Same network and options -> the same bytes (Amaranth's builtin yosys, no
source locations, nothing time- or path-dependent).
"""

from __future__ import annotations

from pathlib import Path

from mstbnn.artefact import TOP_NAME, rtl_dir
from mstbnn.hw.verilog import port_description

__all__ = ["generate", "describe", "TOP_NAME"]


def describe(engine) -> dict:
    """Ports, cycle model, estimates and folded figures of a built engine, as plain data."""
    return dict(
        port_description(engine),
        window_cycles=engine.window_cycles,
        storage_bits=engine.storage_bits,
        flow_model={k: engine.flow[k] for k in ("images", "steady_from", "input_intervals", "output_intervals", "latencies")},
        estimate={family: _plain(engine.resource_estimate(family)) for family in ("ice40", "ecp5")},
    )


def _plain(est: dict) -> dict:
    return {k: est[k] for k in ("luts", "carry", "ffs", "bram")}


def generate(net, out_dir, *, reuse: bool = True, subdir: str | None = None, config=None, device=None) -> Path:
    """Write the folded engine's Verilog and its JSON description.

    Parameters
    ----------
    net : Network
        Compiled network (schedules needed when ``reuse``).
    out_dir : path
        Files go to ``out_dir/rtl-folded/`` (``rtl-folded-baseline/`` when
        ``reuse=False``) unless ``subdir`` is given.
    reuse : bool
        False: the plain baseline from the same generator.
    config : None, (S, G) or list of (S, G)
        S and G per binary layer (:func:`mstbnn.hw.folded.network.layer_plans`).
    device : object with name, family, luts, ffs, bram, or None
        Choose S and G for this device (e.g. ``mstbnn.devices.get_device("ecp5-85k")``)
        with :func:`mstbnn.hw.folded.estimate.choose_config`, which also keeps,
        per layer, the cheaper of the XNOR-weighted and the cycle-weighted
        tree; overrides ``config``.

    Returns
    -------
    Path
        The Verilog file.
    """
    from mstbnn.hw.spec import EngineSpec, build_engine, configure, write_engine

    options = {} if config is None or device is not None else {"config": config}
    net, spec = configure(net, EngineSpec("folded", reuse, options), device)
    rtl = Path(out_dir) / subdir if subdir else rtl_dir(out_dir, not reuse, "folded")
    return write_engine(build_engine(net, spec), spec, rtl)
