"""Amaranth-simulator stream driver shared by the hardware tests.

Drives the input stream and the output ready with independent random
stalls (an engine's flat ``in_*``/``out_*`` ports, or a stage's streams
``i`` and ``o``), records every handshake, and returns the outputs plus the cycles of
input and output handshakes (for latency / II checks).
"""

from __future__ import annotations

import functools

import numpy as np
from amaranth.sim import Simulator


def pack(values, width: int) -> int:
    """Integers (two's complement) -> one packed int, value f at [f*width +: width]."""
    mask = (1 << width) - 1
    out = 0
    for f, v in enumerate(values):
        out |= (int(v) & mask) << (f * width)
    return out


def unpack(word: int, count: int, width: int, signed: bool = True) -> list[int]:
    mask = (1 << width) - 1
    vals = []
    for c in range(count):
        v = (word >> (c * width)) & mask
        if signed and v >> (width - 1):
            v -= 1 << width
        vals.append(v)
    return vals


def run_stream(dut, beats: list[int], n_out: int, *, in_prob=1.0, out_prob=1.0, seed=0, max_cycles=200_000,
               out_ports=None):
    """Push ``beats`` through ``dut`` and collect ``n_out`` outputs.

    Returns (outputs, in_cycles, out_cycles): outputs as tuples of the
    ``out_ports`` values (dotted attribute paths; default the output payload),
    and the cycle of every input and output handshake.
    """
    rng = np.random.default_rng(seed)
    result = {"out": [], "in_cycles": [], "out_cycles": []}
    if hasattr(dut, "i"):  # a stage: streams i and o
        in_valid, in_ready, in_data = dut.i.valid, dut.i.ready, dut.i.payload
        out_valid, out_ready = dut.o.valid, dut.o.ready
        out_ports = out_ports or ("o.payload",)
    else:  # an engine or a test wrapper: flat ports
        in_valid, in_ready, in_data = dut.in_valid, dut.in_ready, dut.in_data
        out_valid, out_ready = dut.out_valid, dut.out_ready
        out_ports = out_ports or ("out_data",)
    outputs = [functools.reduce(getattr, p.split("."), dut) for p in out_ports]

    async def bench(ctx):
        sent = 0
        cycle = 0
        valid = False
        while len(result["out"]) < n_out:
            if cycle > max_cycles:
                raise AssertionError(f"timeout: {len(result['out'])}/{n_out} outputs after {cycle} cycles")
            # A valid beat is held until accepted (the protocol forbids dropping it).
            if not valid and sent < len(beats) and rng.random() < in_prob:
                valid = True
            ctx.set(in_valid, int(valid))
            ctx.set(in_data, beats[sent] if valid else 0)
            ready = rng.random() < out_prob
            ctx.set(out_ready, int(ready))
            if valid and ctx.get(in_ready):
                result["in_cycles"].append(cycle)
                sent += 1
                valid = False
            if ctx.get(out_valid) and ready:
                result["out"].append(tuple(ctx.get(v) for v in outputs))
                result["out_cycles"].append(cycle)
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6, if_exists=True)
    sim.add_testbench(bench)
    sim.run()
    return result["out"], result["in_cycles"], result["out_cycles"]
