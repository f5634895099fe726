"""Build an engine's netlist for a network and prove it against a (possibly different) network."""

from __future__ import annotations

import copy
import io
import json

import numpy as np

from mstbnn.compiler.schedule import Schedule
from mstbnn.hw.verilog import generate
from mstbnn.prove.compare import prove_netlist
from mstbnn.prove.netlist import Netlist, export_json


def build(net, directory, *, reuse=True, **options):
    """(yosys JSON data, engine spec) of the unrolled engine generated for ``net``."""
    vpath = generate(net, directory, reuse=reuse, **options)
    desc = json.loads(vpath.with_suffix(".json").read_text())
    data, _ = export_json(vpath, stream=io.StringIO())
    return data, desc


def prove(data, net, desc):
    return prove_netlist(Netlist(copy.deepcopy(data)), net, desc)


def with_schedule(layer, **changes):
    s = layer.schedule
    fields = dict(order=s.order, parent=s.parent, negate=s.negate, level=s.level, positions=s.positions)
    fields.update(changes)
    layer.schedule = Schedule(**fields)


def cells_of(data):
    return next(iter(data["modules"].values()))["cells"]


def netname_bits(data, name):
    return next(iter(data["modules"].values()))["netnames"][name]["bits"]


def readers(data, bit):
    """(cell name, port, offset) of every cell input that reads ``bit``."""
    out = []
    for name, c in cells_of(data).items():
        dirs = c.get("port_directions", {})
        for port, bits in c["connections"].items():
            if dirs.get(port) == "input":
                out.extend((name, port, i) for i, b in enumerate(bits) if b == bit)
    return out


def rewire(data, bit, new):
    """Every cell input reading ``bit`` reads ``new`` instead."""
    cells = cells_of(data)
    for name, port, i in readers(data, bit):
        cells[name]["connections"][port][i] = new


def flip_first_weight(net, layer_index, channel, position):
    net = copy.deepcopy(net)
    w = net.layers[layer_index].weights
    w[channel, position] = ~w[channel, position]
    for _, layer in net.binary_layers():
        layer.schedule = None  # the old schedule's correction sets no longer match
    return net


def cut_of(net, layer_index, channel):
    """The threshold in the popcount domain the hardware compares with (binary layers)."""
    n = net.layers[layer_index].fan_in
    t = int(net.layers[layer_index + 1].threshold[channel])
    d = int(net.layers[layer_index + 1].direction[channel])
    return -((-(t + n)) // 2) if d > 0 else (t + n) // 2


def live_channel(net, layer_index):
    """A hidden channel whose threshold lies strictly inside its sum's range (its bit is not constant)."""
    n = net.layers[layer_index].fan_in
    th = net.layers[layer_index + 1]
    for j in range(len(th.threshold)):
        if -n + 2 < int(th.threshold[j]) < n - 2:
            return j
    raise AssertionError("no live channel")


__all__ = [
    "build",
    "cells_of",
    "cut_of",
    "flip_first_weight",
    "live_channel",
    "netname_bits",
    "np",
    "prove",
    "readers",
    "rewire",
    "with_schedule",
]
