"""Every bad input is one `mstbnn: error:` line, exit 2, before any work, nothing written (issue 18).

One parametrised table per failure class: each row is an input a hostile or
careless user gave and a fragment of the line that must name the problem.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from mstbnn.cli import main
from mstbnn.compiler import io
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.execute import run
from mstbnn.compiler.random import random_dense_network, random_inputs


@pytest.fixture(scope="module")
def artefact_src(tmp_path_factory):
    """A compiled dense network (threshold input, 4-bit) with a labelled test set and its RTL."""
    from mstbnn.hw.spec import EngineSpec, generate

    d = tmp_path_factory.mktemp("src") / "art"
    net = schedule_network(random_dense_network(np.random.default_rng(18), features=10, hidden=(8,), classes=3))
    io.save(net, d)
    x = random_inputs(net, np.random.default_rng(1), 12)
    np.savez(d / "testset.npz", x=x, y=run(net, x).classes)
    generate(d, EngineSpec("unrolled"))
    return d


@pytest.fixture
def art(tmp_path, artefact_src):
    """A fresh copy per test, so corruptions do not leak between rows."""
    import shutil

    d = tmp_path / "art"
    shutil.copytree(artefact_src, d)
    return d


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny untrained mlp checkpoint (64 inputs, hidden 4, 10 classes), as `mstbnn train` writes it."""
    import torch

    from mstbnn.nn.export import save_checkpoint
    from mstbnn.nn.models import build_model

    torch.manual_seed(0)
    model = build_model("mlp", (64,), 10, hidden=[4], channels=None, width=1.0, input_mode="threshold",
                        input_threshold=4)
    model.config["input_bits"] = 5
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "m.pt")


def _refused(capsys, argv, fragment, tmp_path=None):
    """main(argv) exits 2 with exactly one `mstbnn: error:` line holding ``fragment``; no -o output appears."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, f"exit {rc}; stderr: {err[-1500:]}"
    assert len(lines) == 1 and lines[0].startswith("mstbnn: error: "), err
    assert fragment in lines[0], lines[0]
    if "-o" in argv:
        target = Path(str(argv[argv.index("-o") + 1]))
        assert not target.exists(), f"{target} was written"
    return lines[0]


# --------------------------------------------------------------------------- train options

_TRAIN = ["train", "--epochs", "1", "--hidden", "4", "--quiet"]


@pytest.mark.parametrize("extra, fragment", [
    (["--lr", "nan"], "--lr nan: must be a finite number"),
    (["--lr", "inf"], "--lr inf: must be a finite number"),
    (["--lr", "-1"], "--lr -1: must be greater than 0"),
    (["--mst-lambda", "nan"], "--mst-lambda nan"),
    (["--mst-warmup", "-1"], "--mst-warmup -1"),
    (["--mst-every", "-1"], "--mst-every -1"),
    (["--mst-ramp", "-1"], "--mst-ramp -1"),
    (["--seed", "-1"], "--seed -1"),
    (["--seed", str(2**40)], "a seed is 0 .. 2^32 - 1"),
    (["--epochs", "0"], "--epochs 0"),
    (["--model", "vgg_small", "--width", "nan"], "--width nan"),
    (["--hidden", str(10**9)], "more than the"),  # the memory estimate, not a 7 TiB allocation
])
def test_train_options(tmp_path, capsys, extra, fragment):
    line = _refused(capsys, [*_TRAIN, *extra, "-o", tmp_path / "m.pt"], fragment)
    if "--hidden" in extra:
        assert "GiB" in line and "choose smaller widths" in line


def test_memory_estimate_refuses_what_cannot_fit_and_passes_what_can():
    from types import SimpleNamespace

    from mstbnn.errors import UserError
    from mstbnn.nn.cli import check_model_memory
    from mstbnn.nn.data import load_digits

    data = load_digits()
    args = SimpleNamespace(model="mlp", hidden=[4096, 4096], channels=None, width=1.0, input_mode="threshold",
                           batch_size=64)
    check_model_memory(args, data, available=2**30)  # 17 M parameters: about 0.4 GiB
    with pytest.raises(UserError, match="about 0.4 GiB"):
        check_model_memory(args, data, available=2**28)


# --------------------------------------------------------------------------- data sets

def _dataset(tmp_path, y_train, y_test, x_train=None):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 17, (len(y_train), 64))
    np.savez(tmp_path / "ds.npz", x_train=x if x_train is None else x_train, y_train=np.asarray(y_train),
             x_test=x[: len(y_test)], y_test=np.asarray(y_test))
    return tmp_path / "ds.npz"


_Y = np.arange(30) % 3


@pytest.mark.parametrize("y_train, y_test, fragment", [
    (np.where(np.arange(30) == 0, 10**6, _Y), _Y, "labels run to 1000000"),  # once a 7 TiB confusion matrix
    (_Y, np.where(np.arange(30) == 0, 7, _Y), "test label 7 never occurs in training"),
    (0 * _Y, 0 * _Y, "a classifier needs at least 2"),
    (np.where(_Y == 1, 2, _Y), _Y, "1 class(es) never occur"),
], ids=["label-1e6", "label-only-in-test", "one-class", "class-missing-in-training"])
def test_data_set_classes(tmp_path, capsys, y_train, y_test, fragment):
    ds = _dataset(tmp_path, y_train, y_test)
    _refused(capsys, [*_TRAIN, "--dataset", ds, "-o", tmp_path / "m.pt"], fragment)


def test_data_set_with_inf_inputs(tmp_path, capsys):
    x = np.random.default_rng(0).integers(0, 17, (30, 64)).astype(float)
    x[3, 5] = np.inf
    ds = _dataset(tmp_path, _Y, _Y, x_train=x)
    _refused(capsys, [*_TRAIN, "--dataset", ds, "-o", tmp_path / "m.pt"], "inputs must be integers")


def test_relative_dataset_path_is_stored_resolved(tmp_path, capsys, monkeypatch):
    import torch

    sub = tmp_path / "data"
    sub.mkdir()
    _dataset(sub, _Y, _Y)
    monkeypatch.chdir(tmp_path)
    assert main([*_TRAIN, "--dataset", "data/ds.npz", "-o", "m.pt"]) == 0
    config = torch.load(tmp_path / "m.pt", weights_only=True)["config"]
    assert config["dataset"]["name"] == str(sub / "ds.npz")
    # compiled from elsewhere, the artefact still gets its test set
    monkeypatch.chdir(sub)
    assert main(["compile", str(tmp_path / "m.pt"), "-o", str(tmp_path / "art")]) == 0
    assert (tmp_path / "art" / "testset.npz").is_file()


# --------------------------------------------------------------------------- checkpoints

def _poisoned(checkpoint, tmp_path, key_part, value):
    import torch

    payload = torch.load(checkpoint, weights_only=True)
    key = next(k for k in payload["state_dict"] if key_part in k)
    payload["state_dict"][key].view(-1)[0] = value
    torch.save(payload, tmp_path / "bad.pt")
    return tmp_path / "bad.pt"


@pytest.mark.parametrize("key_part, value", [("layer.weight", float("nan")), ("norm.bias", float("inf")),
                                             ("running_var", float("nan"))])
def test_checkpoint_with_nan_or_inf(tmp_path, capsys, checkpoint, key_part, value):
    bad = _poisoned(checkpoint, tmp_path, key_part, value)
    _refused(capsys, ["compile", bad, "-o", tmp_path / "out"], "holds NaN or inf")


# --------------------------------------------------------------------------- artefact header types

def _header(d, change):
    h = json.loads((d / io.HEADER).read_text())
    change(h)
    (d / io.HEADER).write_text(json.dumps(h))


def _set(path, value):
    def change(h):
        *head, last = path
        target = h
        for k in head:
            target = target[k]
        target[last] = value
    return change


@pytest.mark.parametrize("path, value, fragment", [
    (("layers", 0, "shape"), 64, "layer 0 (input): field 'shape'"),
    (("layers", 0, "shape"), ["a"], "expected a list of integers"),
    (("layers", 1, "schedule"), 5, "layer 1 (dense): field 'schedule'"),
    (("meta",), [1, 2], "field 'meta' is list"),
    (("stats",), 3, "field 'stats' is int"),
    (("layers", 0, "signed"), "no", "layer 0 (input): field 'signed' in network.json is 'no', expected true or false"),
    (("layers", 0, "bits"), "4", "field 'bits'"),
    (("layers", 0, "bits"), True, "field 'bits'"),
    (("layers", 0, "mode"), 3, "field 'mode'"),
    (("layers", 1, "weights"), 7, "layer 1 (dense): field 'weights'"),
    (("layers", 1, "kind"), ["dense"], "layer 1: unknown kind"),
])
def test_artefact_header_field_types(art, capsys, path, value, fragment):
    _header(art, _set(path, value))
    _refused(capsys, ["verilog", art], fragment)


# --------------------------------------------------------------------------- artefact array dtypes and shapes

def _arrays(d, change):
    """Change the arrays and re-list their digest in the header: a consistent artefact with a bad array."""
    with np.load(d / io.ARRAYS) as z:
        a = {k: z[k] for k in z.files}
    change(a)
    np.savez(d / io.ARRAYS, **a)
    digest = hashlib.sha256((d / io.ARRAYS).read_bytes()).hexdigest()
    _header(d, lambda h: h["files"].update({io.ARRAYS: digest}))


def _as(key, convert):
    return lambda a: a.__setitem__(key, convert(a[key]))


def _negate_a_root(a):
    neg = a["L1.schedule.negate"].copy()
    neg[np.flatnonzero(a["L1.schedule.parent"] < 0)[0]] = 1
    a["L1.schedule.negate"] = neg


@pytest.mark.parametrize("change, fragment", [
    (_as("L1.schedule.parent", lambda v: v.astype(np.float64)), "layer 1 (dense): schedule.parent in network.npz has dtype float64"),
    (_as("L1.schedule.order", lambda v: v.astype(np.float32)), "schedule.order in network.npz has dtype float32"),
    (_as("L1.schedule.offsets", lambda v: v.astype(np.float64)), "schedule.offsets in network.npz has dtype float64"),
    (_as("L1.schedule.positions", lambda v: v + 0.25), "schedule.positions in network.npz has dtype float64"),
    (_as("L1.schedule.level", lambda v: v.astype(np.float64)), "schedule.level"),
    (_as("L1.schedule.negate", lambda v: v.astype(np.float64)), "schedule.negate"),
    (_as("L1.schedule.parent", lambda v: v.astype(np.uint64) | np.uint64(2**63)), "beyond int64"),
    (_negate_a_root, "schedule.negate is set on root channel"),
    (_as("L1.weights", lambda v: v.ravel()), "layer 1 (dense): weights in network.npz has shape"),
    (_as("L1.weights", lambda v: v.astype(np.float64)), "layer 1 (dense): weights in network.npz has dtype float64"),
    (_as("L0.thresholds", lambda v: v + 0.5), "layer 0 (input): thresholds"),
    (_as("L2.threshold", lambda v: v[None]), "layer 2 (threshold): threshold in network.npz has shape (1, 8)"),
    (_as("L2.direction", lambda v: v.astype(np.float64)), "layer 2 (threshold): direction"),
    (_as("L1.schedule.parent", lambda v: v[None]), "schedule.parent in network.npz has shape (1, 8)"),
    (lambda a: a.pop("L1.schedule.order"), "schedule array 'L1.schedule.order' missing"),
    (lambda a: a.pop("L3.weights"), "layer 3 (dense): field 'weights' refers to array 'L3.weights'"),
], ids=["parent-float", "order-float", "offsets-float", "positions-float", "level-float", "negate-float",
        "parent-uint64", "negate-on-root", "weights-1d", "weights-float", "thresholds-float", "threshold-2d",
        "direction-float", "parent-2d", "order-dropped", "weights-dropped"])
def test_artefact_array_dtypes_and_shapes(art, capsys, change, fragment):
    _arrays(art, change)
    _refused(capsys, ["verilog", art], fragment)


@pytest.mark.parametrize("cut", [0, 30, 0.5])
def test_truncated_arrays(art, capsys, cut):
    data = (art / io.ARRAYS).read_bytes()
    (art / io.ARRAYS).write_bytes(data[: int(cut * len(data)) if isinstance(cut, float) else cut])
    _refused(capsys, ["verilog", art], "network.npz: does not match network.json (a write was interrupted")


# --------------------------------------------------------------------------- test sets

def _truncate(path, keep=0.5):
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(keep * len(data))])


@pytest.mark.parametrize("command", ["sim", "compile"])
@pytest.mark.parametrize("damage, fragment", [
    (lambda p: _truncate(p), "unreadable test set"),
    (lambda p: np.savez(p, x=np.zeros((3, 10), np.int64), y=np.zeros((3, 2), np.int64)), "labels have shape (3, 2)"),
    (lambda p: np.savez(p, x=np.zeros((3, 7), np.int64), y=np.zeros(3, np.int64)), "samples have shape (7,)"),
    (lambda p: np.savez(p, x=np.full((3, 10), 99), y=np.zeros(3, np.int64)), "outside the input range [0, 15]"),
    (lambda p: np.savez(p, x=np.full((3, 10), 1.5), y=np.zeros(3, np.int64)), "inputs have dtype float64"),
    (lambda p: np.savez(p, y=np.zeros(3, np.int64)), "no x (or x_test) array"),
], ids=["truncated", "y-2d", "x-wrong-shape", "x-out-of-range", "x-float", "no-x"])
def test_artefact_test_set(art, tmp_path, capsys, command, damage, fragment):
    damage(art / "testset.npz")
    argv = ["sim", art, "--vectors", "2"] if command == "sim" else ["compile", art, "-o", tmp_path / "out"]
    _refused(capsys, argv, fragment)


@pytest.mark.parametrize("make, fragment", [
    (lambda p: np.save(p.with_suffix(".npy"), np.full((2, 10), 99)) or p.with_suffix(".npy"), "outside the input range"),
    (lambda p: np.save(p.with_suffix(".npy"), np.full((2, 10), 1.7)) or p.with_suffix(".npy"), "inputs have dtype float64"),
    (lambda p: (np.savez(p, x=np.zeros((2, 10), np.int64)), _truncate(p)) and p, "unreadable test set"),
    (lambda p: np.save(p.with_suffix(".npy"), np.zeros((2, 3), np.int64)) or p.with_suffix(".npy"), "samples have shape (3,)"),
], ids=["out-of-range", "float", "truncated-npz", "wrong-shape"])
def test_run_inputs(art, tmp_path, capsys, make, fragment):
    path = make(tmp_path / "inputs.npz")
    _refused(capsys, ["run", art, "--port", tmp_path / "no-such-port", "--inputs", path], fragment)


# --------------------------------------------------------------------------- command options

@pytest.mark.parametrize("argv, fragment", [
    (["sim", "{art}", "--seed", "-1"], "--seed -1"),
    (["sim", "{art}", "--vectors", str(10**12)], "must be at most 1,000,000"),
    (["sim", "{art}", "--vectors", "-1"], "must be 0 or more"),
    (["bitstream", "{art}", "--board", "icebreaker", "--baud", "0"], "--baud 0"),
    (["run", "{art}", "--port", "/dev/null", "--baud", "0"], "--baud 0"),
    (["run", "{art}", "--port", "/dev/null", "--limit", "-1"], "--limit -1"),
    (["run", "{art}", "--port", "/dev/null", "--limit", "0"], "--limit 0"),
    (["run", "{art}", "--port", "/dev/null", "--timeout", "nan"], "--timeout nan"),
    (["synth", "{art}", "--device", "ecp5-25k", "--freq", "-5"], "--freq -5"),
    (["synth", "{art}", "--device", "ecp5-25k", "--freq", "nan"], "--freq nan"),
    (["synth", "{art}", "--device", "ecp5-25k", "--freq", "1e9"], "must be at most 1000"),
    (["verilog", "{art}", "--engine", "folded", "--simd", "0"], "--simd 0"),
    (["verilog", "{art}", "--engine", "folded", "--gather", "0"], "--gather 0"),
    (["verilog", "{art}", "--engine", "folded", "--simd", "0", "--gather", "0"], "--simd 0"),
    (["verilog", "{art}", "--simd", "4"], "apply to --engine folded only"),
    (["verilog", "{art}", "--adder-levels-per-stage", "0"], "--adder-levels-per-stage 0"),
    (["compile", "{art}", "-o", "{tmp}/out", "--max-depth", "-1"], "--max-depth"),
])
def test_command_options(art, tmp_path, capsys, argv, fragment):
    before = sorted(p.name for p in art.iterdir())
    _refused(capsys, [a.format(art=art, tmp=tmp_path) for a in argv], fragment)
    assert sorted(p.name for p in art.iterdir()) == before  # nothing written into the artefact


def test_sim_path_with_spaces_is_refused_up_front(tmp_path, artefact_src, capsys):
    import shutil

    d = tmp_path / "with space" / "art"
    shutil.copytree(artefact_src, d)
    _refused(capsys, ["sim", d, "--vectors", "2"], "Verilator's generated makefiles cannot quote")
    assert not (d / "sim_build").exists()


def test_largest_device_refusal_points_to_the_folded_engine():
    from mstbnn.devices import DEVICES
    from mstbnn.boards.synth import check_fit, estimate_fit
    from mstbnn.errors import UserError

    huge = {"luts": 10**6, "carry": 0, "ffs": 100}
    with pytest.raises(UserError, match=r"largest ecp5 device: use --engine folded"):
        check_fit(estimate_fit(huge, DEVICES["ecp5-85k"]), DEVICES["ecp5-85k"], force=False)
    with pytest.raises(UserError, match=r"choose a larger --device \(e.g. ecp5-45k\)"):
        check_fit(estimate_fit(huge, DEVICES["ecp5-25k"]), DEVICES["ecp5-25k"], force=False)
    with pytest.raises(UserError, match=r"largest ice40 device: train a smaller network"):
        check_fit(estimate_fit(huge, DEVICES["ice40-hx8k"]), DEVICES["ice40-hx8k"], force=False, engine="folded")


# --------------------------------------------------------------------------- output paths

def _a_file(tmp_path):
    (tmp_path / "afile").write_text("not a directory")
    return tmp_path / "afile"


@pytest.mark.parametrize("command", ["train", "compile", "demo"])
@pytest.mark.parametrize("where, fragment", [
    (lambda tmp: _a_file(tmp) / "out", "is a file, not a directory"),
    (lambda tmp: Path("/proc/mstbnn-out"), "cannot write in /proc"),
], ids=["under-a-file", "under-proc"])
def test_output_paths(tmp_path, capsys, checkpoint, command, where, fragment):
    out = where(tmp_path)
    argv = {"train": [*_TRAIN, "-o", out / "m.pt" if command == "train" else out],
            "compile": ["compile", checkpoint, "-o", out],
            "demo": ["demo", "-o", out]}[command]
    _refused(capsys, argv, fragment)


def test_output_on_a_read_only_path(tmp_path, capsys, checkpoint):
    if os.geteuid() == 0:
        target = Path("/sys/mstbnn-out")  # sysfs refuses new files even to root
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = ro / "out"
    _refused(capsys, ["compile", checkpoint, "-o", target], "cannot write in")


# --------------------------------------------------------------------------- argparse usage errors

@pytest.mark.parametrize("argv, fragment", [
    (["train", "--lr", "abc", "-o", "m.pt"], "train: argument --lr: invalid float value: 'abc'; see `mstbnn train --help`"),
    (["sim", "DIR", "--bogus"], "sim: unrecognized arguments: --bogus; see `mstbnn sim --help`"),
    (["compile", "DIR"], "compile: the following arguments are required: -o/--output; see `mstbnn compile --help`"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["verilog", "DIR", "--engine", "sideways"], "verilog: argument --engine: invalid choice"),
    (["train", "--hidden", "0", "-o", "m.pt"], "train: argument --hidden: widths must be positive"),
])
def test_argparse_usage_errors_are_one_line(tmp_path, capsys, argv, fragment):
    line = _refused(capsys, argv, fragment)
    assert "usage:" not in line


# --------------------------------------------------------------------------- demo validates everything first

@pytest.mark.parametrize("extra, fragment", [
    (["--vectors", "-1"], "--vectors -1"),
    (["--vectors", str(10**9)], "--vectors"),
    (["--max-depth", "0"], "--max-depth 0"),
    (["--epochs", "0"], "--epochs 0"),
    (["--hidden", "abc"], "--hidden"),
    (["--hidden", "0"], "--hidden"),
    (["--mst-lambda", "-1"], "--mst-lambda -1"),
    (["--mst-lambda", "nan"], "--mst-lambda nan"),
    (["--seed", "-1"], "--seed -1"),
])
def test_demo_refuses_before_training(tmp_path, capsys, extra, fragment):
    _refused(capsys, ["demo", "-o", tmp_path / "demo", *extra], fragment)
    assert not (tmp_path / "demo").exists()


def test_demo_refuses_an_output_path_with_spaces(tmp_path, capsys):
    _refused(capsys, ["demo", "-o", tmp_path / "my demo"], "path without spaces")
    assert not (tmp_path / "my demo").exists()


# --------------------------------------------------------------------------- report's result files

@pytest.mark.parametrize("name, content, fragment", [
    ("sim.json", "[1, 2]", "sim.json: expected a JSON object"),
    ("sim.json", "{", "sim.json: not valid JSON"),
    ("synth.json", '{"runs": [1]}', "synth.json: not the runs"),
    ("synth.json", '{"runs": {"ecp5-25k/reuse": {"device": "ecp5-25k", "resources": {}}}}', "synth.json: not the runs"),
    ("synth.json", '"text"', "synth.json: not the runs"),
])
def test_report_of_damaged_result_files(art, capsys, name, content, fragment):
    (art / name).write_text(content)
    _refused(capsys, ["report", art], fragment)
    assert not list(art.glob("*.png")) and not (art / "report.md").exists()  # refused before the first plot


def test_report_of_a_yosys_only_run(art, capsys):
    run = {"device": "ecp5-25k", "engine": "reuse", "resources": {
        k: {"used": None, "available": 100} for k in ("lut", "ff", "bram")}}
    (art / "synth.json").write_text(json.dumps({"runs": {"ecp5-25k/reuse/synth-only": run}}))
    assert main(["report", str(art)]) == 0
    assert "| ecp5-25k/reuse/synth-only | n/a / 100 | n/a |" in (art / "report.md").read_text()
