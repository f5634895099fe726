"""Hardware for a network through :mod:`mstbnn.hw`, as a :class:`~mstbnn.sim.design.Design`."""

from __future__ import annotations

from pathlib import Path

from mstbnn.sim.design import Design

__all__ = ["generate_design", "generate_folded_design", "design_generator"]


def generate_design(net, out_dir, *, reuse: bool = True, **options) -> Design:
    """Generate ``net``'s engine Verilog into ``out_dir/rtl`` and describe it."""
    from mstbnn.hw.verilog import generate

    vpath = generate(net, out_dir, reuse=reuse, subdir="rtl", **options)
    return Design.from_hw_json(Path(vpath).with_suffix(".json"))


def generate_folded_design(net, out_dir, *, reuse: bool = True, config=None, **_) -> Design:
    """Generate ``net``'s folded engine into ``out_dir/rtl`` and describe it.

    A per-layer ``config`` longer or shorter than ``net``'s binary layers (a
    prefix network in diagnosis) falls back to the default S and G.
    """
    from mstbnn.hw.folded.verilog import generate

    if isinstance(config, list) and len(config) != len(net.binary_layers()):
        config = None
    vpath = generate(net, out_dir, reuse=reuse, subdir="rtl", config=config)
    return Design.from_hw_json(Path(vpath).with_suffix(".json"))


def design_generator(*, reuse: bool = True, engine: str = "unrolled", **options):
    """A ``generate(net, out_dir) -> Design`` callable with fixed options (for prefix diagnosis)."""
    make = generate_folded_design if engine == "folded" else generate_design

    def generate(net, out_dir) -> Design:
        return make(net, out_dir, reuse=reuse, **options)

    return generate
