"""The board commands end to end: synth, bitstream (argument errors), run over a pty."""

import json
import os

import numpy as np
import pytest

from mstbnn.boards.protocol import format_from_network
from mstbnn.cli import main
from mstbnn.compiler import io
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.execute import run
from mstbnn.compiler.random import random_dense_network, random_inputs
from tests.boards.test_host import FakeBoard, decode


def _artefact(tmp_path, *, features=12, hidden=(10,), classes=4, bits=4, clustered=True, testset=0, seed=0,
              engine=False):
    """A compiled artefact (with ``testset`` labelled vectors); with ``engine``, its generated reuse engine too."""
    rng = np.random.default_rng(seed)
    net = schedule_network(random_dense_network(rng, features=features, hidden=hidden, classes=classes, bits=bits,
                                                clustered=clustered))
    d = tmp_path / "net"
    io.save(net, d)
    if testset:
        x = random_inputs(net, rng, testset)
        np.savez(d / "testset.npz", x=x, y=run(net, x).classes)
    if engine:  # what `mstbnn verilog` writes; `run` checks the board's network against its spec
        from mstbnn.hw.spec import EngineSpec, generate

        generate(d, EngineSpec("unrolled"))
    return d, net


def test_synth_writes_the_report(tmp_path, capsys):
    d, _ = _artefact(tmp_path)
    assert main(["synth", str(d), "--device", "ice40-hx8k"]) == 0
    out = capsys.readouterr().out
    assert "ice40-hx8k" in out and "Fmax" in out and "synth.json" in out
    runs = json.loads((d / "synth.json").read_text())["runs"]
    run_ = runs["ice40-hx8k/reuse"]
    assert run_["engine"] == "reuse" and len(run_["network_sha256"]) == 64
    assert run_["estimate"]["fits"] and run_["resources"]["lut"]["used"] > 0
    assert run_["fmax_mhz"] > 0


def test_synth_only_is_recorded_apart_from_placed_runs(tmp_path, capsys):
    d, _ = _artefact(tmp_path)
    assert main(["synth", str(d), "--device", "ecp5-25k", "--baseline", "--synth-only"]) == 0
    assert "not placed" in capsys.readouterr().out
    runs = json.loads((d / "synth.json").read_text())["runs"]
    assert list(runs) == ["ecp5-25k/baseline/synth-only"]
    report = runs["ecp5-25k/baseline/synth-only"]
    assert report["placed"] is False and report["fmax_mhz"] is None and report["throughput_per_s"] is None
    assert report["resources"]["lut"]["used"] > 0 and report["resources"]["ff"]["used"] > 0
    assert report["options"]["nextpnr"] is None and "nextpnr" not in report["seconds"]
    assert not (d / "synth" / "ecp5-25k-baseline-synth-only" / "report.json").exists()


def test_design_that_cannot_fit_is_refused_before_synthesis(tmp_path, capsys):
    d, _ = _artefact(tmp_path, features=128, hidden=(128,), bits=1, clustered=False)
    assert main(["synth", str(d), "--device", "ice40-up5k", "--baseline"]) == 2
    err = capsys.readouterr().err
    assert "does not fit ice40-up5k" in err and "logic cells" in err and "--force" in err
    assert "Traceback" not in err
    assert not (d / "synth.json").exists() and not (d / "synth").exists()


def test_fit_refusal_builds_no_hardware(tmp_path, capsys):
    """The fit check reads the engine's plan: nothing is built, so Amaranth has no unused component to warn about."""
    import gc
    import warnings

    from amaranth.hdl import UnusedElaboratable

    d, _ = _artefact(tmp_path, features=128, hidden=(128,), bits=1, clustered=False, engine=True)
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["synth", str(d), "--device", "ice40-up5k"]) == 2
        gc.collect()  # an engine built and dropped warns when it is collected
    assert "does not fit ice40-up5k" in capsys.readouterr().err
    assert not [w for w in caught if issubclass(w.category, UnusedElaboratable)]


@pytest.mark.parametrize("argv,message", [
    (["synth", "{d}", "--device", "virtex"], "unknown device 'virtex'"),
    (["synth", "{d}/nope", "--device", "ice40-up5k"], "no such directory"),
    (["bitstream", "{d}", "--board", "arty"], "unknown board 'arty'"),
    (["bitstream", "{d}", "--board", "ulx3s", "--baud", "3000000"], "baud rate 3000000 is not reachable"),
    (["run", "{d}", "--port", "{d}/ttyNONE"], "cannot open serial port"),
    (["run", "{d}", "--port", "/dev/null", "--inputs", "{d}/missing.npy"], "missing.npy: no such file"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, argv, message):
    d, _ = _artefact(tmp_path, testset=3, engine=argv[0] == "run")
    assert main([a.format(d=d) for a in argv]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mstbnn: error:")]
    assert len(errors) == 1 and message in errors[0]


@pytest.mark.parametrize("honest", [True, False])
def test_run_prints_predictions_and_checks_them(tmp_path, capsys, honest):
    d, net = _artefact(tmp_path, testset=6, seed=4, engine=True)
    fmt = format_from_network(net)
    master, slave = os.openpty()

    def answer(data, i):
        c = int(run(net, decode(fmt, data)[None]).classes[0])
        return c if honest or i != 2 else (c + 1) % fmt.n_classes

    FakeBoard(master, fmt.bytes_per_image, answer).start()
    code = main(["run", str(d), "--port", os.ttyname(slave), "--timeout", "2"])
    os.close(slave)
    os.close(master)
    out = capsys.readouterr().out
    if honest:
        assert code == 0 and "6 / 6 predictions agree" in out and "accuracy on the board: 1.0000" in out
    else:
        assert code == 1 and "5 / 6 predictions agree" in out and "MISMATCH" in out
    assert len([line for line in out.splitlines() if line[:5].strip().isdigit()]) == 6
