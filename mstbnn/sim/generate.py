"""Hardware for a (prefix) network built exactly as an engine spec says, as a :class:`~mstbnn.sim.design.Design`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mstbnn.sim.design import Design

__all__ = ["design_generator"]


def design_generator(spec):
    """A ``generate(net, out_dir) -> Design`` callable building engines with ``spec``'s options.

    Used by the divergence locator on prefix networks: a prefix of k binary
    layers gets the first k per-layer (S, G) pairs of a folded spec.
    """
    from mstbnn.hw.spec import build_engine, write_engine

    def generate(net, out_dir) -> Design:
        options = dict(spec.options)
        if isinstance(options.get("config"), list):
            options["config"] = options["config"][: len(net.binary_layers())]
        prefix_spec = replace(spec, options=options, network_sha256=None)
        vpath = write_engine(build_engine(net, prefix_spec), prefix_spec, Path(out_dir))
        return Design.from_hw_json(Path(vpath).with_suffix(".json"))

    return generate
