"""`mstbnn prove DIR`: exit codes, the report file, refusal of missing or stale RTL, a mutated Verilog text."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from mstbnn import artefact
from mstbnn.cli import main
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.io import save
from mstbnn.compiler.random import random_dense_network
from mstbnn.hw.spec import EngineSpec
from mstbnn.hw.spec import generate as generate_engine


def generate(directory, *, baseline=False, engine="unrolled"):
    """What `mstbnn verilog DIR` writes: the engine and its spec, for the network in ``directory``."""
    return generate_engine(directory, EngineSpec(engine, reuse=not baseline))


def _vouch(vpath):
    """Make the spec describe an edited Verilog, as a generator bug would (its own check must not catch it)."""
    import hashlib

    spec = vpath.with_suffix(".json")
    desc = json.loads(spec.read_text())
    desc["verilog_sha256"] = hashlib.sha256(vpath.read_bytes()).hexdigest()
    spec.write_text(json.dumps(desc))


@pytest.fixture()
def art(tmp_path):
    rng = np.random.default_rng(2)
    net = schedule_network(random_dense_network(rng, features=8, hidden=(6,), classes=3, bits=3, clustered=False),
                           negation=True)
    save(net, tmp_path)
    return tmp_path, net


def test_missing_rtl_is_bad_input(art, capsys):
    directory, _ = art
    assert main(["prove", str(directory)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mstbnn: error: ") and f"mstbnn verilog {directory}" in err
    assert not artefact.result_path(directory, "prove").exists()


def test_stale_rtl_is_refused(art, capsys):
    directory, net = art
    generate(directory)
    spec = artefact.spec_path(directory)
    desc = json.loads(spec.read_text())
    desc["network_sha256"] = "0" * 64
    spec.write_text(json.dumps(desc))
    assert main(["prove", str(directory)]) == 2
    err = capsys.readouterr().err
    assert "the network changed after `mstbnn verilog` (stale engine)" in err and f"run `mstbnn verilog {directory}`" in err


@pytest.mark.parametrize("baseline", [False, True])
def test_proven_engine_exits_0_and_writes_the_report(art, capsys, baseline):
    directory, net = art
    generate(directory, baseline=baseline)
    assert main(["prove", str(directory)] + (["--baseline"] if baseline else [])) == 0
    assert capsys.readouterr().out.startswith("PROVEN")
    report = json.loads(artefact.result_path(directory, "prove", baseline).read_text())
    assert report["proven"] and report["baseline"] == baseline
    assert [e["status"] for e in report["layers"]] == ["proven", "proven"]
    assert report["times"]["export_s"] > 0 and report["stall"]["one_enable_per_stage"]


def test_mutated_quantiser_constant_in_the_verilog_exits_1(art, capsys):
    directory, net = art
    vpath = generate(directory)
    text = vpath.read_text()
    # The first input-quantiser compare with a constant strictly inside the 3-bit range.
    pattern = re.compile(r"i__payload\[(\d+):(\d+)\] >= (\d+)'h([0-9a-f]+);")
    m = next(m for m in pattern.finditer(text) if 1 <= int(m.group(4), 16) <= 6)
    feature = int(m.group(2)) // 3
    value = int(m.group(4), 16) + 1
    vpath.write_text(text[:m.start()] + f"i__payload[{m.group(1)}:{m.group(2)}] >= 3'h{value:x};" + text[m.end():])
    _vouch(vpath)
    assert main(["prove", str(directory)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("DIFFERS") and f"layer 0 (input quantiser) feature {feature} differs" in out, out
    report = json.loads(artefact.result_path(directory, "prove").read_text())
    assert not report["proven"] and report["layers"][0]["status"] == "not proven"


def test_folded_engine_is_reported_not_proven(art, capsys):
    directory, net = art
    generate(directory, engine="folded")
    assert main(["prove", str(directory), "--engine", "folded"]) == 1
    assert capsys.readouterr().out.startswith("NOT PROVEN: the folded engine")


def test_conv_network_is_reported_not_proven(tmp_path, capsys):
    from mstbnn.compiler.random import random_conv_network

    rng = np.random.default_rng(1)
    net = schedule_network(random_conv_network(rng, input_shape=(1, 4, 4), convs=((2, 3, 1, 1, False),), classes=2))
    save(net, tmp_path)
    generate(tmp_path)
    assert main(["prove", str(tmp_path)]) == 1
    assert capsys.readouterr().out.startswith("NOT PROVEN: conv networks")
    assert json.loads(artefact.result_path(tmp_path, "prove").read_text())["verdict"] == "NOT PROVEN"
