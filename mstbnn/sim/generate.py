"""Hardware for a network through :mod:`mstbnn.hw`, as a :class:`~mstbnn.sim.design.Design`."""

from __future__ import annotations

from pathlib import Path

from mstbnn.sim.design import Design

__all__ = ["generate_design", "design_generator"]


def generate_design(net, out_dir, *, reuse: bool = True, **options) -> Design:
    """Generate ``net``'s engine Verilog into ``out_dir/rtl`` and describe it."""
    from mstbnn.hw.verilog import generate

    vpath = generate(net, out_dir, reuse=reuse, subdir="rtl", **options)
    return Design.from_hw_json(Path(vpath).with_suffix(".json"))


def design_generator(*, reuse: bool = True, **options):
    """A ``generate(net, out_dir) -> Design`` callable with fixed options (for prefix diagnosis)."""

    def generate(net, out_dir) -> Design:
        return generate_design(net, out_dir, reuse=reuse, **options)

    return generate
