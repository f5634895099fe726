"""The engine spec: what `verilog` generated is what `sim`, `synth`, `bitstream` and `run` build."""

import hashlib
import json

import numpy as np
import pytest

from mstbnn.artefact import spec_path, verilog_path
from mstbnn.cli import main
from mstbnn.compiler import io
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.random import random_dense_network


def _artefact(tmp_path, seed=0, features=16, hidden=(12,), classes=3):
    net = schedule_network(random_dense_network(np.random.default_rng(seed), features=features, hidden=hidden,
                                                classes=classes, clustered=True))
    d = tmp_path / "net"
    io.save(net, d)
    return d


def _spec(d, **kw):
    return json.loads(spec_path(d, **kw).read_text())


def _error(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mstbnn: error: "), err
    return lines[0]


def test_spec_records_every_option_the_digest_and_the_verilog(tmp_path, capsys):
    d = _artefact(tmp_path)
    assert main(["verilog", str(d), "--adder-levels-per-stage", "3", "--corrections", "late"]) == 0
    spec = _spec(d)
    assert spec["engine"] == "unrolled" and spec["reuse"] is True
    assert spec["options"] == {"adder_levels_per_stage": 3, "tree_levels_per_stage": 1, "corrections": "late",
                               "fuse_leaves": False}
    assert spec["network_sha256"] and spec["generator"]
    assert spec["verilog_sha256"] == hashlib.sha256(verilog_path(d).read_bytes()).hexdigest()


def test_synth_builds_the_generated_unrolled_engine_not_the_defaults(tmp_path, capsys):
    d = _artefact(tmp_path)
    assert main(["verilog", str(d)]) == 0
    default_latency = _spec(d)["latency"]
    assert main(["verilog", str(d), "--adder-levels-per-stage", "1", "--tree-levels-per-stage", "2"]) == 0
    generated = _spec(d)
    assert generated["latency"] != default_latency  # else this test could not tell the two apart
    assert main(["synth", str(d), "--device", "ecp5-25k", "--synth-only"]) == 0
    report = json.loads((d / "synth.json").read_text())["runs"]["ecp5-25k/reuse/synth-only"]
    assert report["spec"]["options"] == generated["options"]
    assert report["network_sha256"] == generated["network_sha256"]
    assert report["latency_cycles"] == generated["latency"]
    assert report["initiation_interval"] == generated["initiation_interval"]


def test_folded_device_choice_is_written_into_the_spec_and_synthesised(tmp_path, capsys):
    d = _artefact(tmp_path, features=24, hidden=(16,))
    assert main(["verilog", str(d), "--engine", "folded", "--simd", "4", "--gather", "1"]) == 0
    generated = _spec(d, engine="folded")
    assert generated["options"]["config"] == [[4, 1], [4, 1]] and generated["device"] is None
    # synth --device would choose S and G for the device; it must build the generated engine instead
    assert main(["synth", str(d), "--engine", "folded", "--device", "ecp5-25k", "--synth-only"]) == 0
    report = json.loads((d / "synth.json").read_text())["runs"]["ecp5-25k/folded-reuse/synth-only"]
    assert report["spec"]["options"]["config"] == [[4, 1], [4, 1]]
    assert report["initiation_interval"] == generated["initiation_interval"]

    assert main(["verilog", str(d), "--engine", "folded", "--device", "ecp5-25k"]) == 0
    chosen = _spec(d, engine="folded")
    assert chosen["device"] == "ecp5-25k" and chosen["options"]["config"] != [[4, 1], [4, 1]]


def test_synth_without_rtl_generates_the_defaults_and_says_so(tmp_path, capsys):
    d = _artefact(tmp_path)
    assert main(["synth", str(d), "--device", "ecp5-25k", "--synth-only"]) == 0
    err = capsys.readouterr().err
    assert "generating it with the defaults" in err and f"mstbnn verilog {d}" in err
    assert _spec(d)["options"]["adder_levels_per_stage"] == 2


@pytest.mark.parametrize("step", [["synth", "--device", "ecp5-25k", "--synth-only"],
                                  ["bitstream", "--board", "ulx3s"], ["run", "--port", "/dev/null"]])
def test_network_changed_after_verilog_is_stale_for_synth_bitstream_and_run(tmp_path, capsys, step):
    d = _artefact(tmp_path)
    assert main(["verilog", str(d)]) == 0
    with np.load(d / "network.npz") as f:
        arrays = {k: f[k] for k in f.files}
    key = next(k for k in sorted(arrays) if k.endswith(".weights"))
    arrays[key].flat[0] ^= 1
    (d / "network.npz").write_bytes(io.npz_bytes(arrays))
    line = _error(capsys, [step[0], str(d), *step[1:]])
    assert "the network changed after `mstbnn verilog`" in line and f"run `mstbnn verilog {d}`" in line
    assert not (d / "synth.json").exists()


def test_interrupted_generation_is_refused(tmp_path, capsys):
    d = _artefact(tmp_path)
    assert main(["verilog", str(d)]) == 0
    vpath = verilog_path(d)
    vpath.write_text(vpath.read_text()[:-200])  # a Verilog the spec does not describe
    line = _error(capsys, ["sim", str(d), "--vectors", "3"])
    assert "does not match its engine spec" in line


def test_spec_of_the_other_engine_kind_is_refused(tmp_path, capsys):
    d = _artefact(tmp_path)
    assert main(["verilog", str(d)]) == 0
    spec = _spec(d)
    spec["reuse"] = False
    spec_path(d).write_text(json.dumps(spec))
    assert "describes a unrolled baseline engine" in _error(capsys, ["sim", str(d), "--vectors", "3"])
