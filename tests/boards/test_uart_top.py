"""UART top around the real engine: bytes in, class bytes out, bit-exact with the golden executor."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from mstbnn.boards.protocol import InputFormat, encode_image, format_from_network
from mstbnn.boards.uart_top import UartClassifier
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.execute import run
from mstbnn.compiler.random import random_conv_network, random_dense_network, random_inputs
from mstbnn.hw.network import NetworkEngine
from tests.boards.serial_sim import receive_bytes, send_bytes

DIVISOR = 4


def _simulate(top, fmt, images, *, drop=None, pause_cycles=0):
    """Send ``images`` over the UART (image ``drop`` only half, then silence).

    Returns the class bytes received and the engine's scores at each output handshake.
    """
    engine = top.engine
    expected = len(images) - (drop is not None)
    answers, scores = [], []

    async def host(ctx):
        for i, x in enumerate(images):
            data = encode_image(fmt, x)
            if i == drop:
                await send_bytes(ctx, top.rx, data[: len(data) // 2 + 1], DIVISOR)
                await ctx.tick().repeat(pause_cycles)
            else:
                await send_bytes(ctx, top.rx, data, DIVISOR)

    async def listen(ctx):
        limit = 12 * DIVISOR * (fmt.bytes_per_image + 4) * len(images) + pause_cycles + 1000
        answers.append(await receive_bytes(ctx, top.tx, expected, DIVISOR, limit))

    async def watch(ctx):
        async for _, _, valid, ready, s in ctx.tick().sample(engine.out_valid, engine.out_ready, engine.out_scores):
            if valid and ready:
                scores.append(s)

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(host, background=True)
    sim.add_process(watch)
    sim.add_testbench(listen)
    sim.run()
    return np.frombuffer(answers[0], dtype=np.uint8).astype(np.int64), scores


def _unpack_scores(raw, classes, width):
    out = []
    for value in raw:
        row = []
        for c in range(classes):
            v = (value >> (c * width)) & ((1 << width) - 1)
            row.append(v - (1 << width) if v >> (width - 1) else v)
        out.append(row)
    return np.asarray(out, dtype=np.int64).reshape(-1, classes)


NETWORKS = {
    "dense-threshold": lambda rng: random_dense_network(rng, features=12, hidden=(10,), classes=4, bits=4),
    "dense-int-signed": lambda rng: random_dense_network(rng, features=7, hidden=(9, 6), classes=3,
                                                         input_mode="int", bits=9, signed=True),
    "conv-int": lambda rng: random_conv_network(rng, input_shape=(2, 4, 4), convs=((4, 3, 1, 1, False),),
                                                classes=3, input_mode="int", bits=6, signed=True),
    "conv-pool": lambda rng: random_conv_network(rng, input_shape=(1, 6, 6), convs=((4, 3, 1, 1, True),),
                                                 hidden=(5,), classes=5, bits=3),
}


@pytest.mark.parametrize("reuse", [True, False], ids=["reuse", "baseline"])
@pytest.mark.parametrize("kind", list(NETWORKS))
def test_classes_and_scores_match_the_golden_executor(kind, reuse):
    rng = np.random.default_rng(sum(map(ord, kind)))
    net = schedule_network(NETWORKS[kind](rng))
    images = random_inputs(net, rng, 6)
    engine = NetworkEngine(net, reuse=reuse)
    fmt = format_from_network(net)
    top = UartClassifier(engine, fmt, divisor=DIVISOR, timeout_cycles=20 * DIVISOR * 10)
    answers, raw_scores = _simulate(top, fmt, images)
    golden = run(net, images)
    assert answers.tolist() == golden.classes.tolist()
    assert _unpack_scores(raw_scores, engine.classes, engine.score_width).tolist() == golden.scores.tolist()


@pytest.mark.parametrize("kind", ["dense-threshold", "conv-int"])
def test_half_sent_image_is_dropped_after_silence(kind):
    rng = np.random.default_rng(5)
    net = schedule_network(NETWORKS[kind](rng))
    images = random_inputs(net, rng, 4)
    engine = NetworkEngine(net)
    fmt = format_from_network(net)
    timeout = 20 * DIVISOR * 10
    top = UartClassifier(engine, fmt, divisor=DIVISOR, timeout_cycles=timeout)
    answers, raw_scores = _simulate(top, fmt, images, drop=1, pause_cycles=2 * timeout)
    golden = run(net, np.delete(images, 1, axis=0))
    assert answers.tolist() == golden.classes.tolist()
    assert _unpack_scores(raw_scores, engine.classes, engine.score_width).tolist() == golden.scores.tolist()


def test_engine_with_another_beat_width_is_refused():
    rng = np.random.default_rng(0)
    net = schedule_network(NETWORKS["dense-threshold"](rng))
    fmt = InputFormat(shape=(13,), value_width=4, signed=False, values_per_beat=13, n_classes=4)
    with pytest.raises(ValueError, match="in_data"):
        UartClassifier(NetworkEngine(net), fmt, divisor=DIVISOR, timeout_cycles=10)
