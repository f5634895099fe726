"""UART top: bytes in, class bytes out, against the golden model, bit for bit."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from mstbnn.boards.protocol import InputFormat, encode_images
from mstbnn.boards.uart_top import UartClassifier
from tests.boards.serial_sim import receive_bytes, send_bytes
from tests.boards.standin import StandInEngine


def _simulate(top, fmt, images, divisor, *, pause_after=None, pause_cycles=0, max_cycles=None):
    """Send ``images`` through the UART and collect the answer bytes."""
    expected = len(images) - (1 if pause_after is not None else 0)
    got = []

    async def host(ctx):
        for i, x in enumerate(images):
            data = encode_images(fmt, [x])
            if i == pause_after:
                # a truncated image, then silence: the board must drop it
                await send_bytes(ctx, top.rx, data[: len(data) // 2 + 1], divisor)
                await ctx.tick().repeat(pause_cycles)
                continue
            await send_bytes(ctx, top.rx, data, divisor)

    async def listen(ctx):
        limit = max_cycles or 40 * divisor * (fmt.bytes_per_image + 2) * len(images) + pause_cycles
        got.append(await receive_bytes(ctx, top.tx, expected, divisor, limit))

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(host, background=True)
    sim.add_testbench(listen)
    sim.run()
    return np.frombuffer(got[0], dtype=np.uint8).astype(np.int64)


@pytest.mark.parametrize("features,width,classes,is_signed", [(6, 4, 3, False), (5, 9, 4, True), (8, 8, 2, False)])
def test_standin_engine_classes_come_back_bit_exact(features, width, classes, is_signed):
    rng = np.random.default_rng(features * 100 + width)
    engine = StandInEngine(features, width, classes, is_signed)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed else (0, (1 << width) - 1)
    images = rng.integers(lo, hi + 1, size=(5, features))
    fmt = InputFormat(shape=(features,), value_width=width, signed=is_signed, values_per_beat=features,
                      n_classes=classes)
    top = UartClassifier(engine, fmt, divisor=4, timeout_cycles=200)
    got = _simulate(top, fmt, images, 4)
    _, want = engine.golden(images)
    assert got.tolist() == want.tolist()


def test_partial_image_is_dropped_after_silence():
    rng = np.random.default_rng(7)
    engine = StandInEngine(6, 5, 3)
    images = rng.integers(0, 32, size=(4, 6))
    fmt = InputFormat(shape=(6,), value_width=5, signed=False, values_per_beat=6, n_classes=3)
    top = UartClassifier(engine, fmt, divisor=4, timeout_cycles=100)
    got = _simulate(top, fmt, images, 4, pause_after=1, pause_cycles=300)
    _, want = engine.golden(np.delete(images, 1, axis=0))
    assert got.tolist() == want.tolist()


def test_engine_with_wrong_beat_width_is_refused():
    fmt = InputFormat(shape=(6,), value_width=5, signed=False, values_per_beat=6, n_classes=3)
    with pytest.raises(ValueError, match="in_data"):
        UartClassifier(StandInEngine(5, 5, 3), fmt, divisor=4, timeout_cycles=10)
