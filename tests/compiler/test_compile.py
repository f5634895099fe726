"""`mstbnn compile`: an IR in, a scheduled artefact out; schedules are MSTs and deterministic."""

import numpy as np
import pytest

from mstbnn.cli import main
from mstbnn.compiler import io
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.execute import run
from mstbnn.compiler.random import random_conv_network, random_dense_network, random_inputs


@pytest.fixture
def ir_dir(tmp_path):
    net = random_dense_network(np.random.default_rng(5), 20, (24, 16), 5)
    io.save(net, tmp_path / "ir")
    return tmp_path / "ir"


def test_compile_cli_writes_scheduled_artefact_and_table(ir_dir, tmp_path, capsys):
    assert main(["compile", str(ir_dir), "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "| layer | kind | C_out | N | MST weight | height |" in out and "| total |" in out
    net = io.load(tmp_path / "out")
    assert all(layer.schedule is not None for _, layer in net.binary_layers())
    x = random_inputs(net, np.random.default_rng(0), 16)
    np.testing.assert_array_equal(run(net, x, "reuse").scores, run(net, x, "direct").scores)


def test_compile_is_byte_deterministic(ir_dir, tmp_path):
    for name in ("a", "b"):
        assert main(["compile", str(ir_dir), "-o", str(tmp_path / name), "--negation"]) == 0
    for f in (io.HEADER, io.ARRAYS):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_compile_max_depth_and_baseline(ir_dir, tmp_path):
    assert main(["compile", str(ir_dir), "-o", str(tmp_path / "h1"), "--max-depth", "1"]) == 0
    assert all(l.schedule.height <= 1 for _, l in io.load(tmp_path / "h1").binary_layers())
    assert main(["compile", str(ir_dir), "-o", str(tmp_path / "plain"), "--no-reuse"]) == 0
    assert all(len(l.schedule.roots) == l.out_channels for _, l in io.load(tmp_path / "plain").binary_layers())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compile", "{tmp}/missing", "-o", "{tmp}/o"], "no such file or directory"),
        (["compile", "{ir}", "-o", "{tmp}/o", "--max-depth", "-1"], "--max-depth must be >= 0"),
    ],
)
def test_compile_bad_input_exits_2_with_one_line(ir_dir, tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path, ir=ir_dir) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_reuse_schedule_is_exact_on_conv_with_negation():
    rng = np.random.default_rng(9)
    net = random_conv_network(rng, (2, 7, 7), ((6, 3, 2, 1, False), (8, 3, 1, 1, True)), (10,), 4, input_mode="int")
    sched = schedule_network(net, negation=True)
    x = random_inputs(net, rng, 6)
    a, b = run(net, x, "direct"), run(sched, x, "reuse")
    for la, lb in zip(a.layers, b.layers):
        if la.sums is not None:
            np.testing.assert_array_equal(la.sums, lb.sums)
