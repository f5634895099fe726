"""UART receiver and transmitter against a bit-level line model."""

import numpy as np
import pytest
from amaranth import Module
from amaranth.sim import Simulator

from mstbnn.boards.uart import UARTRx, UARTTx
from tests.boards.serial_sim import receive_bytes, send_bytes


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_rx_decodes_every_byte(divisor):
    data = bytes(np.random.default_rng(divisor).integers(0, 256, 24).tolist()) + b"\x00\xff"
    dut = UARTRx(divisor)
    got = []

    async def drive(ctx):
        await send_bytes(ctx, dut.rx, data, divisor, gap_bits=divisor % 3)
        await ctx.tick().repeat(4 * divisor)

    async def collect(ctx):
        async for *_, valid, value in ctx.tick().sample(dut.valid, dut.data):
            if valid:
                got.append(value)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(drive)
    sim.add_process(collect)
    sim.run_until(1e-6 * (len(data) * 12 + 8) * divisor)
    assert bytes(got) == data


@pytest.mark.parametrize("divisor", [4, 9])
def test_tx_sends_every_byte(divisor):
    data = bytes(np.random.default_rng(divisor + 1).integers(0, 256, 16).tolist()) + b"\x00\xff"
    dut = UARTTx(divisor)
    got = []

    async def feed(ctx):
        for byte in data:
            ctx.set(dut.data, byte)
            ctx.set(dut.valid, 1)
            await ctx.tick().until(dut.ready)
            ctx.set(dut.valid, 0)
            await ctx.tick()

    async def listen(ctx):
        got.append(await receive_bytes(ctx, dut.tx, len(data), divisor, 20 * divisor * len(data)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(feed, background=True)
    sim.add_testbench(listen)
    sim.run()
    assert got[0] == data


def test_rx_drops_a_byte_with_a_bad_stop_bit():
    divisor = 6
    dut = UARTRx(divisor)
    got = []

    async def drive(ctx):
        # 0x55 with its stop bit held low, then a proper 0xA3
        for bit in [0] + [(0x55 >> i) & 1 for i in range(8)] + [0, 0]:
            ctx.set(dut.rx, bit)
            await ctx.tick().repeat(divisor)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3 * divisor)
        await send_bytes(ctx, dut.rx, b"\xa3", divisor)
        await ctx.tick().repeat(3 * divisor)

    async def collect(ctx):
        async for *_, valid, value in ctx.tick().sample(dut.valid, dut.data):
            if valid:
                got.append(value)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(drive)
    sim.add_process(collect)
    sim.run_until(1e-6 * 40 * divisor)
    assert got == [0xA3]


@pytest.mark.parametrize("divisor", [3, 0])
def test_divisor_below_four_is_refused(divisor):
    with pytest.raises(ValueError):
        UARTRx(divisor)
    with pytest.raises(ValueError):
        UARTTx(divisor)
