"""Fuzzing the promise: a damaged artefact or an odd argument value is never a traceback (issue 18).

Hypothesis corrupts a small compiled artefact (truncation, flipped bytes,
changed dtypes and shapes, dropped keys in network.json and in the arrays of
network.npz and testset.npz) and feeds it to `compile`, `verilog` and `sim`
through :func:`mstbnn.cli.main` in-process. Each run either gets past every
check to the point where the real work starts (the generator, the simulator:
replaced by a sentinel here, so an example costs milliseconds) or is refused
with exit 2 and one `mstbnn: error:` line, and leaves nothing behind.
Argument values are fuzzed the same way, against an independent rule of
which values are valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import io as _io
import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mstbnn.cli import main
from mstbnn.compiler import io
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.execute import run
from mstbnn.compiler.random import random_dense_network, random_inputs

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


class _Reached(Exception):
    """Raised where the real work would start: every check before it passed."""


def _reached(*args, **kwargs):
    raise _Reached


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A scheduled dense network (with a labelled test set) and the same with its unrolled RTL."""
    from mstbnn.hw.spec import EngineSpec, generate

    root = tmp_path_factory.mktemp("fuzz")
    net = schedule_network(random_dense_network(np.random.default_rng(7), features=6, hidden=(5,), classes=3))
    io.save(net, root / "art")
    x = random_inputs(net, np.random.default_rng(0), 8)
    np.savez(root / "art" / "testset.npz", x=x, y=run(net, x).classes)
    shutil.copytree(root / "art", root / "with-rtl")
    generate(root / "with-rtl", EngineSpec("unrolled"))
    return root


@pytest.fixture
def no_work(monkeypatch):
    """The generators and the simulator replaced by the sentinel."""
    import mstbnn.hw.folded.verilog
    import mstbnn.hw.spec
    import mstbnn.hw.verilog
    import mstbnn.sim.bulk
    import mstbnn.sim.verify

    monkeypatch.setattr(mstbnn.hw.spec, "generate", _reached)
    monkeypatch.setattr(mstbnn.hw.verilog, "generate", _reached)
    monkeypatch.setattr(mstbnn.hw.folded.verilog, "generate", _reached)
    monkeypatch.setattr(mstbnn.sim.verify, "simulate_and_locate", _reached)
    monkeypatch.setattr(mstbnn.sim.bulk, "simulate_phases", _reached)


def _call(argv) -> tuple[str, str]:
    """('ok' | 'reached' | 'refused', stderr); anything else fails the test with its traceback."""
    err = _io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(_io.StringIO()):
        try:
            rc = main([str(a) for a in argv])
        except _Reached:
            return "reached", err.getvalue()
    text = err.getvalue()
    if rc == 0:
        return "ok", text
    lines = [line for line in text.splitlines() if line.strip()]
    assert rc == 2, f"exit {rc} for {argv}: {text[-1500:]}"
    assert len(lines) == 1 and lines[0].startswith("mstbnn: error: "), f"{argv}: {text[-1500:]}"
    return "refused", text


# --------------------------------------------------------------------------- corruptions

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=5,
)
_DTYPES = st.sampled_from(["float64", "float32", "int8", "uint8", "int32", "uint64", "bool", "complex64", "<U3"])


def _json_paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _json_paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _json_paths(v, prefix + (i,))


@st.composite
def corruptions(draw):
    """One damage to one file of the artefact: (description, function of the artefact directory)."""
    kind = draw(st.sampled_from(["truncate", "flip", "json-drop", "json-set", "array-drop", "array-dtype",
                                 "array-shape"]))
    if kind in ("truncate", "flip"):
        name = draw(st.sampled_from([io.HEADER, io.ARRAYS, "testset.npz"]))
        frac = draw(st.floats(0, 0.999))
        flips = draw(st.lists(st.tuples(st.floats(0, 0.999), st.integers(1, 255)), min_size=1, max_size=4))

        def damage(d):
            data = bytearray((d / name).read_bytes())
            if kind == "truncate":
                data = data[: int(frac * len(data))]
            else:
                for where, xor in flips:
                    data[int(where * len(data))] ^= xor
            (d / name).write_bytes(bytes(data))
        return f"{kind} {name}", damage
    if kind.startswith("json"):
        pick = draw(st.integers(0, 10**6))
        value = draw(_JSON_VALUES)

        def damage(d):
            header = json.loads((d / io.HEADER).read_text())
            paths = [p for p in _json_paths(header) if p]
            path = paths[pick % len(paths)]
            parent = header
            for k in path[:-1]:
                parent = parent[k]
            if kind == "json-drop":
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
            (d / io.HEADER).write_text(json.dumps(header))
        return f"{kind} {value!r}", damage
    name = draw(st.sampled_from([io.ARRAYS, "testset.npz"]))
    pick = draw(st.integers(0, 10**6))
    dtype = draw(_DTYPES)
    reshape = draw(st.sampled_from(["add-axis", "ravel", "drop-last", "empty", "transpose"]))

    def damage(d):
        with np.load(d / name) as z:
            arrays = {k: z[k] for k in z.files}
        key = sorted(arrays)[pick % len(arrays)]
        a = arrays[key]
        if kind == "array-drop":
            del arrays[key]
        elif kind == "array-dtype":
            arrays[key] = a.astype(dtype)
        else:
            arrays[key] = {"add-axis": lambda v: v[None], "ravel": lambda v: v.ravel(),
                           "drop-last": lambda v: v[:-1], "empty": lambda v: v[:0], "transpose": lambda v: v.T}[reshape](a)
        np.savez(d / name, **arrays)
    return f"{kind} {name} {dtype} {reshape}", damage


def _relist(d):
    """Re-list network.npz's digest in the header: a consistent artefact whose arrays are damaged.

    Without this the header's file list refuses every damaged array file at
    once, and the array checks behind it would never be fuzzed.
    """
    try:
        header = json.loads((d / io.HEADER).read_text())
        header["files"][io.ARRAYS] = hashlib.sha256((d / io.ARRAYS).read_bytes()).hexdigest()
    except (OSError, ValueError, KeyError, TypeError):
        return
    (d / io.HEADER).write_text(json.dumps(header))


def _damaged_copy(source, sub, damage, relist=False):
    tmp = Path(tempfile.mkdtemp(prefix="mstbnn-fuzz-"))
    d = tmp / "art"
    shutil.copytree(source / sub, d)
    damage(d)
    if relist:
        _relist(d)
    return tmp, d


@FUZZ
@given(corruption=corruptions(), relist=st.booleans())
def test_compile_of_a_damaged_artefact(source, corruption, relist):
    what, damage = corruption
    tmp, d = _damaged_copy(source, "art", damage, relist)
    try:
        outcome, err = _call(["compile", d, "-o", tmp / "out"])
        if outcome == "refused":
            assert not (tmp / "out").exists(), f"{what}: refused but left {tmp / 'out'}"
    finally:
        shutil.rmtree(tmp)


@FUZZ
@given(corruption=corruptions(), engine=st.sampled_from(["unrolled", "folded"]), relist=st.booleans())
def test_verilog_of_a_damaged_artefact(source, no_work, corruption, engine, relist):
    what, damage = corruption
    tmp, d = _damaged_copy(source, "art", damage, relist)
    try:
        outcome, _ = _call(["verilog", d, "--engine", engine])
        assert outcome in ("reached", "refused"), what
        assert sorted(p.name for p in d.iterdir()) == sorted(["network.json", "network.npz", "testset.npz"]), what
    finally:
        shutil.rmtree(tmp)


@FUZZ
@given(corruption=corruptions())
def test_sim_of_a_damaged_artefact(source, no_work, corruption):
    what, damage = corruption
    tmp, d = _damaged_copy(source, "with-rtl", damage)
    try:
        outcome, _ = _call(["sim", d, "--vectors", "3"])
        assert outcome in ("reached", "refused"), what
        assert not list(d.glob("sim*.json")) and not (d / "sim_build").exists(), what
    finally:
        shutil.rmtree(tmp)


# --------------------------------------------------------------------------- argument values

_VALUES = st.one_of(
    st.integers(-2**66, 2**66).map(str),
    st.sampled_from(["0", "1", "-1", "1000000", "1000001", str(2**32 - 1), str(2**32)]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet="0123456789-.e+naif x", max_size=7),
)


def _as(convert, text):
    """The value argparse would hand the command, or None when it refuses the text."""
    if text.startswith("-") and not _looks_negative(text):
        return None
    try:
        return convert(text)
    except ValueError:
        return None


def _looks_negative(text):
    # argparse treats "-5" / "-1.5" as a value (the parser has no options like that), anything else as an option
    try:
        float(text)
        return True
    except ValueError:
        return False


@FUZZ
@given(vectors=_VALUES, seed=_VALUES)
def test_sim_vectors_and_seed(source, no_work, vectors, seed):
    v, s = _as(int, vectors), _as(int, seed)
    outcome, err = _call(["sim", source / "with-rtl", "--no-testset", "--vectors", vectors, "--seed", seed])
    valid = v is not None and s is not None and 0 <= v <= 1_000_000 and 0 <= s < 2**32 and v > 0
    assert outcome == ("reached" if valid else "refused"), (vectors, seed, err)


@FUZZ
@given(simd=_VALUES, gather=_VALUES)
def test_folded_verilog_simd_and_gather(source, no_work, simd, gather):
    s, g = _as(int, simd), _as(int, gather)
    outcome, err = _call(["verilog", source / "art", "--engine", "folded", "--simd", simd, "--gather", gather])
    valid = s is not None and g is not None and s >= 1 and g >= 1
    assert outcome == ("reached" if valid else "refused"), (simd, gather, err)


@FUZZ
@given(freq=_VALUES)
def test_synth_freq(source, monkeypatch, freq):
    import mstbnn.boards.cli

    monkeypatch.setattr(mstbnn.boards.cli, "synth_network", _reached)
    f = _as(float, freq)
    outcome, err = _call(["synth", source / "art", "--device", "ecp5-25k", "--freq", freq])
    valid = f is not None and math.isfinite(f) and 0 < f <= 1000
    assert outcome == ("reached" if valid else "refused"), (freq, err)


@FUZZ
@given(lr=_VALUES, lam=_VALUES, epochs=_VALUES)
def test_train_lr_lambda_epochs(tmp_path, monkeypatch, lr, lam, epochs):
    import mstbnn.nn.data

    monkeypatch.setattr(mstbnn.nn.data, "load_dataset", _reached)
    r, m, e = _as(float, lr), _as(float, lam), _as(int, epochs)
    outcome, err = _call(["train", "--lr", lr, "--mst-lambda", lam, "--epochs", epochs, "-o", tmp_path / "m.pt"])
    valid = (r is not None and m is not None and e is not None and math.isfinite(r) and r > 0
             and math.isfinite(m) and m >= 0 and e >= 1)
    assert outcome == ("reached" if valid else "refused"), (lr, lam, epochs, err)
    assert not (tmp_path / "m.pt").exists()
