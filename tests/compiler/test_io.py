"""Artefact save / load: round trip, determinism, and every bad-input path."""

import hashlib
import json

import numpy as np
import pytest

from mstbnn.compiler import io
from mstbnn.compiler.execute import run
from mstbnn.compiler.random import random_conv_network, random_dense_network, random_inputs
from mstbnn.compiler.schedule import Schedule
from mstbnn.errors import UserError


def scheduled(net, rng):
    for _, layer in net.binary_layers():
        c = layer.out_channels
        parent = np.array([-1] + [int(rng.integers(0, j)) for j in range(1, c)])
        layer.schedule = Schedule.from_parents(layer.weight_matrix, parent, rng.random(c) < 0.3)
    return net


@pytest.fixture
def net():
    rng = np.random.default_rng(3)
    return scheduled(random_conv_network(rng, (2, 6, 6), ((4, 3, 2, 1, False), (5, 3, 1, 1, True)), (6,), 3), rng)


def test_round_trip_preserves_everything(net, tmp_path):
    io.save(net, tmp_path / "a")
    back = io.load(tmp_path / "a")
    assert [l.kind for l in back.layers] == [l.kind for l in net.layers]
    for a, b in zip(net.layers, back.layers):
        for field in ("weights", "threshold", "direction", "thresholds"):
            if getattr(a, field, None) is not None:
                np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        if getattr(a, "schedule", None) is not None:
            for field in ("order", "parent", "negate", "level"):
                np.testing.assert_array_equal(getattr(a.schedule, field), getattr(b.schedule, field))
            for pa, pb in zip(a.schedule.positions, b.schedule.positions):
                np.testing.assert_array_equal(pa, pb)
    x = random_inputs(net, np.random.default_rng(0), 5)
    np.testing.assert_array_equal(run(net, x, "reuse").scores, run(back, x, "reuse").scores)


def test_save_is_byte_deterministic(net, tmp_path):
    io.save(net, tmp_path / "a")
    io.save(net, tmp_path / "b")
    for name in (io.HEADER, io.ARRAYS):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_load_accepts_header_path(net, tmp_path):
    io.save(net, tmp_path)
    assert len(io.load(tmp_path / io.HEADER).layers) == len(net.layers)


def edit_header(path, fn):
    header = json.loads((path / io.HEADER).read_text())
    fn(header)
    (path / io.HEADER).write_text(json.dumps(header))


def edit_array(path, key, fn):
    """Change one array and re-list the file in the header: a consistent artefact holding a bad array."""
    with np.load(path / io.ARRAYS) as f:
        arrays = {k: f[k] for k in f.files}
    arrays[key] = fn(arrays[key])
    np.savez(path / io.ARRAYS, **arrays)
    digest = hashlib.sha256((path / io.ARRAYS).read_bytes()).hexdigest()
    edit_header(path, lambda h: h["files"].update({io.ARRAYS: digest}))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p: edit_header(p, lambda h: h.update(version=99)), "version 99 is not supported"),
        (lambda p: edit_header(p, lambda h: h.update(format="x")), "not an mstbnn network"),
        (lambda p: edit_header(p, lambda h: h["layers"][2].update(kind="fancy")), "layer 2: unknown kind 'fancy'"),
        (lambda p: edit_header(p, lambda h: h["layers"][1].pop("weights")), "layer 1 \\(conv2d\\): field 'weights' is missing"),
        (lambda p: edit_header(p, lambda h: h["layers"][1].pop("stride")), "layer 1 \\(conv2d\\): field 'stride' is missing"),
        (lambda p: edit_array(p, "L1.weights", lambda w: w * 3), "layer 1 \\(conv2d\\): weights is not binary"),
        (lambda p: edit_array(p, "L1.weights", lambda w: w[:, :1]), "layer 1 \\(conv2d\\): weights expect 1 input channels"),
        (lambda p: edit_array(p, "L2.threshold", lambda t: t[:-1]), "layer 2 \\(threshold\\): threshold has shape \\(3,\\), expected \\(4,\\)"),
        (lambda p: edit_array(p, "L2.direction", lambda d: d * 0), "layer 2 \\(threshold\\): direction must hold only"),
        (lambda p: edit_array(p, "L0.thresholds", lambda t: t[:1]), "layer 0 \\(input\\): thresholds have shape"),
        (lambda p: edit_array(p, "L1.schedule.parent", lambda a: np.where(a >= 0, 0, a)), "layer 1 \\(conv2d\\): schedule"),
        (lambda p: edit_array(p, "L8.weights", lambda w: w[:, :-1]), "layer 8 \\(dense\\): weights have fan-in 5"),
        (lambda p: (p / io.ARRAYS).unlink(), "array file missing"),
        (lambda p: (p / io.HEADER).write_text("{"), "not a valid JSON header"),
    ],
)
def test_bad_artefacts_give_one_clear_error(net, tmp_path, mutate, message):
    io.save(net, tmp_path)
    mutate(tmp_path)
    with pytest.raises(UserError, match=message) as info:
        io.load(tmp_path)
    assert "\n" not in str(info.value)


def test_missing_directory(tmp_path):
    with pytest.raises(UserError, match="no compiled network here"):
        io.load(tmp_path / "nowhere")


def test_save_refuses_invalid_network_and_writes_nothing(tmp_path):
    net = random_dense_network(np.random.default_rng(0), 8, (4,), 2)
    net.layers[1].weights = net.layers[1].weights.astype(np.int64) * 2
    with pytest.raises(UserError, match="not binary"):
        io.save(net, tmp_path / "out")
    assert not (tmp_path / "out" / io.HEADER).exists()
