"""``mstbnn sim DIR``: figures, exit codes and refusals."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from mstbnn.cli import main
from mstbnn.compiler import execute
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.io import npz_bytes, save
from mstbnn.compiler.random import random_dense_network, random_inputs
from mstbnn.compiler.schedule import Schedule
from mstbnn.sim import toolchain


def _write_testset(d, n, seed=0):
    from mstbnn.compiler.io import load

    net = load(d)
    x = random_inputs(net, np.random.default_rng(seed), n)
    y = execute.run(net, x).classes.copy()
    y[: n // 5] = (y[: n // 5] + 1) % net.n_classes  # 20% "wrong labels": accuracy is really computed
    np.savez(d / "testset.npz", x=x.reshape(n, -1), y=y)  # flat samples are reshaped
    return n


def test_sim_reports_bit_exact_and_writes_sim_json(artefacts, capsys):
    d = artefacts["dense"]
    n_test = _write_testset(d, 25)
    rc = main(["sim", str(d), "--vectors", "40", "--seed", "3"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "65/65 vectors bit-exact" in out
    fig = json.loads((d / "sim.json").read_text())
    assert fig["vectors"] == fig["bit_exact"] == 65 and fig["mismatches"] == 0
    assert fig["test_vectors"] == n_test and fig["random_vectors"] == 40
    assert fig["latency"] == fig["latency_model"] and fig["latencies_seen"] == [fig["latency"]]
    assert fig["initiation_interval"] == fig["initiation_interval_model"] == 1
    assert fig["simulator"] == "verilator" and fig["baseline"] is False and fig["ok"] is True
    assert fig["harness"] == "bulk" and fig["phases"]["bulk"]["bit_exact"] == 65
    assert fig["vectors_per_second"] > 0
    assert fig["test_accuracy"] == pytest.approx(0.8)
    assert "vec" in err  # the progress bar


def test_sim_baseline_writes_its_own_figures(artefacts, capsys):
    d = artefacts["dense"]
    rc = main(["sim", str(d), "--baseline", "--vectors", "30", "--no-testset", "--harness", "cocotb"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "30/30 vectors bit-exact" in out
    fig = json.loads((d / "sim-baseline.json").read_text())
    assert fig["baseline"] is True and fig["vectors"] == 30 and fig["test_vectors"] == 0


@pytest.mark.skipif("icarus" not in toolchain.available_simulators(), reason="iverilog not installed")
def test_sim_with_icarus(artefacts, capsys):
    d = artefacts["dense"]
    rc = main(["sim", str(d), "--simulator", "icarus", "--vectors", "30", "--no-testset", "--harness", "cocotb"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "30/30 vectors bit-exact" in out
    assert json.loads((d / "sim.json").read_text())["simulator"] == "icarus"


def test_mismatch_exits_1_and_names_vector_layer_and_channel(tmp_path, capsys):
    from mstbnn.hw.spec import EngineSpec, generate

    rng = np.random.default_rng(12)
    net = schedule_network(random_dense_network(rng, features=8, hidden=(6,), classes=3))
    save(net, tmp_path)
    # A planted generator bug: the artefact's engine spec, but RTL of a network whose
    # score layer differs in one weight (channel 1)
    bad = copy.deepcopy(net)
    last = bad.layers[-1]
    last.weights[1, 0] ^= True
    last.schedule = Schedule.from_parents(last.weights, last.schedule.parent, last.schedule.negate)
    generate(tmp_path, EngineSpec("unrolled"), net=bad)
    rc = main(["sim", str(tmp_path), "--vectors", "20", "--harness", "cocotb"])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "/20 vectors bit-exact" in out and "20/20" not in out
    assert "FAIL: vector 0 (timing): class" in err and "score of class 1 is" in err
    fig = json.loads((tmp_path / "sim.json").read_text())
    assert fig["ok"] is False and fig["mismatches"] > 0
    assert fig["divergence"].startswith("vector 0: layer 3 (dense, scores), channel 1"), fig["divergence"]


def _error(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("mstbnn: error: "), err
    return lines[0]


def test_refusals_are_one_line_user_errors(tmp_path, capsys, artefacts):
    assert "no such directory" in _error(capsys, ["sim", str(tmp_path / "nope")])
    assert "no compiled network" in _error(capsys, ["sim", str(tmp_path)])
    net = schedule_network(random_dense_network(np.random.default_rng(0), features=6, hidden=(), classes=2))
    save(net, tmp_path / "art")
    assert "run `mstbnn verilog" in _error(capsys, ["sim", str(tmp_path / "art")])
    assert "--baseline" in _error(capsys, ["sim", str(tmp_path / "art"), "--baseline"])
    assert "must be 0 or more" in _error(capsys, ["sim", str(artefacts["dense"]), "--vectors", "-1"])
    assert "not found" in _error(capsys, ["sim", str(artefacts["dense"]), "--testset", str(tmp_path / "t.npz")])
    np.savez(tmp_path / "t.npz", x_test=np.zeros((3, 5), dtype=np.int64))
    assert "the network takes (12,)" in _error(capsys, ["sim", str(artefacts["dense"]), "--testset", str(tmp_path / "t.npz")])
    np.savez(tmp_path / "t.npz", x_test=np.full((3, 12), 99, dtype=np.int64))
    assert "outside the input range" in _error(capsys, ["sim", str(artefacts["dense"]), "--testset", str(tmp_path / "t.npz")])


@pytest.mark.parametrize("changed", ["network.json", "network.npz"])
def test_network_changed_after_verilog_is_refused_as_stale(tmp_path, capsys, changed):
    from mstbnn.hw.spec import EngineSpec, generate

    rng = np.random.default_rng(1)
    net = schedule_network(random_dense_network(rng, features=6, hidden=(), classes=2))
    save(net, tmp_path)
    generate(tmp_path, EngineSpec("unrolled"))
    if changed == "network.npz":  # one weight bit flipped: same ports, different network
        with np.load(tmp_path / "network.npz") as f:
            arrays = {k: f[k] for k in f.files}
        key = next(k for k in sorted(arrays) if k.endswith(".weights"))
        arrays[key].flat[0] ^= 1
        (tmp_path / "network.npz").write_bytes(npz_bytes(arrays))
    else:
        header = json.loads((tmp_path / "network.json").read_text())
        header["meta"]["edited"] = True
        (tmp_path / "network.json").write_text(json.dumps(header))
    line = _error(capsys, ["sim", str(tmp_path), "--vectors", "5"])
    assert "the network changed after `mstbnn verilog`" in line and f"run `mstbnn verilog {tmp_path}`" in line


def test_rtl_of_another_network_shape_is_refused(tmp_path, capsys):
    from mstbnn.hw.spec import EngineSpec, generate

    rng = np.random.default_rng(4)
    save(schedule_network(random_dense_network(rng, features=6, hidden=(), classes=2)), tmp_path)
    generate(tmp_path, EngineSpec("unrolled"), net=schedule_network(random_dense_network(rng, features=6, hidden=(), classes=3)))
    assert "design has 3 classes, network 2" in _error(capsys, ["sim", str(tmp_path), "--vectors", "5"])
