"""Every benchmark imports against the current package and answers --help (they are run rarely, so they rot)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(BENCH.glob("bench_*.py"))


def test_every_benchmark_is_listed():
    assert len(SCRIPTS) >= 13


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_benchmark_imports_and_answers_help(script, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCH))  # as `python benchmarks/bench_x.py` sees it: `import _record`
    # Some benchmarks set AMARANTH_USE_YOSYS at import; setenv records the old state so it is restored.
    monkeypatch.setenv("AMARANTH_USE_YOSYS", os.environ.get("AMARANTH_USE_YOSYS", "builtin"))
    name = f"_bench_{script.stem}"
    spec = importlib.util.spec_from_file_location(name, script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and "--help" in out
