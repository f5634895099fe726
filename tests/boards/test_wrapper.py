"""Pin-fitting harness: chunk choice and a simulation through the real engine."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from mstbnn.boards.wrapper import CONTROL_PINS, SynthHarness, choose_chunk, harness_ffs
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.execute import run
from mstbnn.compiler.random import random_dense_network, random_inputs
from mstbnn.hw.network import NetworkEngine


@pytest.mark.parametrize("in_width,value_width,class_width,pins,want", [
    (320, 5, 4, 39, 5),      # digits mlp on an UP5K: one value per load
    (20, 5, 2, 39, 20),      # small enough: whole beat at once
    (320, 40, 4, 39, 26),    # wide values: as many pins as are left
    (320, 5, 4, 197, 5),
])
def test_chunk_fits_the_package(in_width, value_width, class_width, pins, want):
    chunk = choose_chunk(in_width, value_width, class_width, pins)
    assert chunk == want
    assert chunk + CONTROL_PINS + class_width <= pins


def test_package_without_data_pins_is_refused():
    with pytest.raises(ValueError):
        choose_chunk(64, 8, 4, CONTROL_PINS + 4)


@pytest.mark.parametrize("features,bits,whole", [(6, 4, False), (9, 5, False), (3, 3, True)])
def test_harness_loads_the_beat_the_engine_classifies(features, bits, whole):
    rng = np.random.default_rng(features)
    net = schedule_network(random_dense_network(rng, features=features, hidden=(8,), classes=3, bits=bits))
    images = random_inputs(net, rng, 5)
    engine = NetworkEngine(net)
    chunk = features * bits if whole else bits
    dut = SynthHarness(engine, chunk)
    got = []

    async def bench(ctx):
        for x in images:
            ctx.set(dut.load, 1)
            for f in range(0, features * bits // chunk):
                vals = x[f * chunk // bits:(f + 1) * chunk // bits]
                word = sum(int(v) << (k * bits) for k, v in enumerate(vals))
                ctx.set(dut.data, word)
                await ctx.tick()
            ctx.set(dut.load, 0)
            ctx.set(dut.go, 1)
            await ctx.tick()
            ctx.set(dut.go, 0)
            ctx.set(dut.take, 1)
            await ctx.tick().until(dut.out_valid)
            got.append(ctx.get(dut.out_class))
            await ctx.tick().repeat(3)
            ctx.set(dut.take, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == run(net, images).classes.tolist()
    assert harness_ffs(features * bits, chunk, len(engine.out_class)) >= features * bits
