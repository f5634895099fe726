"""Whole folded networks in the Amaranth simulator: bit-exact against the golden executor,
latency and initiation interval equal to the flow model."""

import numpy as np
import pytest

from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.execute import run
from mstbnn.compiler.random import random_conv_network, random_dense_network, random_inputs
from mstbnn.errors import UserError
from mstbnn.hw.folded.network import FoldedEnginePlan, FoldedNetworkEngine
from mstbnn.hw.folded.timing import bottleneck_cycles
from tests.hw.streams import pack, run_stream, unpack

NETS = {
    "dense": lambda rng: random_dense_network(rng, features=16, hidden=(12, 8), classes=4),
    "dense-int": lambda rng: random_dense_network(rng, features=10, hidden=(8,), classes=3, input_mode="int", bits=4, signed=True),
    "conv-pool": lambda rng: random_conv_network(rng, input_shape=(1, 6, 6), convs=((4, 3, 1, 1, True),), classes=3),
    "conv-stride": lambda rng: random_conv_network(
        rng, input_shape=(2, 7, 7), convs=((4, 3, 1, 1, False), (6, 3, 2, 1, False)), hidden=(5,), classes=3
    ),
    "conv-int": lambda rng: random_conv_network(rng, input_shape=(2, 5, 5), convs=((4, 3, 1, 0, False),), classes=3,
                                                input_mode="int", bits=3, signed=False),
}


def _beats(net, x):
    bits = net.layers[0].bits
    beats = []
    for img in x:
        if img.ndim == 3:
            beats += [pack(img[:, yy, xx], bits) for yy in range(img.shape[1]) for xx in range(img.shape[2])]
        else:
            beats.append(pack(img, bits))
    return beats


def _check(eng, net, x, **stream):
    trace = run(net, x)
    outs, ins, out_cycles = run_stream(eng, _beats(net, x), len(x), out_ports=("out_class", "out_scores"), **stream)
    for i, (cls, scores) in enumerate(outs):
        assert unpack(scores, eng.classes, eng.score_width) == trace.scores[i].tolist(), f"image {i}: scores"
        assert cls == trace.classes[i], f"image {i}: class"
    return ins, out_cycles


CASES = [(name, config) for name in NETS for config in [(4, 2), (16, 1)] if not (name == "conv-stride" and config == (16, 1))]


@pytest.mark.parametrize("name,config", CASES)
@pytest.mark.parametrize("reuse", [True, False])
def test_network_bit_exact_and_cycle_model_exact(name, reuse, config):
    rng = np.random.default_rng(len(name) * 31 + config[0])
    net = schedule_network(NETS[name](rng))
    eng = FoldedNetworkEngine(net, reuse=reuse, config=config)
    x = random_inputs(net, rng, 4)
    _check(eng, net, x, in_prob=0.6, out_prob=0.6, seed=3)
    ins, out_cycles = _check(eng, net, x)
    bpi = eng.beats_per_image
    assert out_cycles[0] - ins[bpi - 1] == eng.latency
    assert max(b - a for a, b in zip(out_cycles[1:], out_cycles[2:])) == eng.initiation_interval
    _check_flow(eng, ins, out_cycles, len(x))
    assert bottleneck_cycles([s.timing for s in eng.stages], bpi) <= eng.initiation_interval


def _check_flow(eng, ins, out_cycles, images):
    """Every image's input interval, output interval and latency as the flow model says (no stalls)."""
    bpi = eng.beats_per_image
    first, last = ins[::bpi][:images], ins[bpi - 1::bpi][:images]
    assert [b - a for a, b in zip(first, first[1:])] == eng.flow["input_intervals"][: images - 1]
    assert [b - a for a, b in zip(out_cycles, out_cycles[1:])] == eng.flow["output_intervals"][: images - 1]
    assert [o - l for o, l in zip(out_cycles, last)] == eng.flow["latencies"][:images]


def test_first_image_enters_an_empty_pipeline():
    """A padded first conv inserts image 0's top pads at once: its first input interval is shorter than
    the II (the 28x28 MNIST cnn's `[30441, 50597]`), and the model predicts every interval exactly."""
    rng = np.random.default_rng(0)
    net = schedule_network(random_conv_network(rng, input_shape=(1, 8, 8), convs=((4, 3, 1, 1, True), (8, 3, 1, 1, True)),
                                               classes=4))
    eng = FoldedNetworkEngine(net, reuse=True, config=(8, 2))
    x = random_inputs(net, rng, 5)
    ins, out_cycles = _check(eng, net, x)
    first = ins[:: eng.beats_per_image]
    assert first[1] - first[0] < eng.initiation_interval == first[2] - first[1]
    _check_flow(eng, ins, out_cycles, len(x))


@pytest.mark.parametrize("options", [dict(negation=True), dict(max_depth=1), dict(negation=True, max_depth=2)])
def test_negation_and_depth_limited_schedules(options):
    rng = np.random.default_rng(9)
    net = NETS["dense-int"](rng)
    for _, layer in net.binary_layers():
        layer.weights[1::2] ^= True  # inverted channels: negation edges pay off
    net = schedule_network(net, **options)
    if options.get("negation"):
        assert any(layer.schedule.negate.any() for _, layer in net.binary_layers())
    eng = FoldedNetworkEngine(net, reuse=True, config=(4, 2))
    x = random_inputs(net, rng, 4)
    _check(eng, net, x, in_prob=0.7, out_prob=0.7, seed=1)


def test_reuse_saves_cycles_and_storage_on_clustered_weights():
    rng = np.random.default_rng(5)
    net = schedule_network(random_dense_network(rng, features=64, hidden=(32,), classes=4))
    reuse = FoldedEnginePlan(net, reuse=True, config=(8, 4))
    plain = FoldedEnginePlan(net, reuse=False, config=(8, 4))
    assert reuse.window_cycles[0] < plain.window_cycles[0]
    assert reuse.initiation_interval < plain.initiation_interval


def test_missing_schedule_is_a_user_error():
    rng = np.random.default_rng(0)
    net = random_dense_network(rng)
    with pytest.raises(UserError, match="no reuse schedule"):
        FoldedEnginePlan(net, reuse=True)
    FoldedEnginePlan(net, reuse=False)  # the baseline needs none


@pytest.mark.parametrize("reuse", [True, False], ids=["reuse", "baseline"])
@pytest.mark.parametrize("kind", ["one", "int1", "forest", "conv1x1"])
def test_width_one_corners_bit_exact_and_on_the_flow_model(kind, reuse):
    """Issue 16/18: 1-input, 1-channel, 2-class networks (a 1-step walk where fan-in and channels are 1),
    every input, in the Amaranth simulator: outputs and every image's timing as the flow model says."""
    from tests.sim.corners import all_inputs, corner_network

    net = corner_network(kind)
    eng = FoldedNetworkEngine(net, reuse=reuse)
    x = np.concatenate([all_inputs(net)] * 2)[:8]
    _check(eng, net, x, in_prob=0.6, out_prob=0.6, seed=5)
    ins, out_cycles = _check(eng, net, x)
    _check_flow(eng, ins, out_cycles, len(x))
    if kind in ("one", "conv1x1"):
        assert eng.window_cycles[0] == 1
        assert eng.initiation_interval == 4  # the 1-step walk's 4 cycles per window (the 2-class argmax needs 3)
