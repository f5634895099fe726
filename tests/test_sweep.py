"""`mstbnn sweep`: frontier arithmetic on hand-made points, a tiny real sweep through yosys, resuming, bad flags."""

import json

import numpy as np
import pytest

from mstbnn import sweep
from mstbnn.artefact import network_digest
from mstbnn.cli import main
from mstbnn.sweep import frontier_ratios, pareto_frontier


def _p(pid, luts, acc):
    return {"id": pid, "luts": luts, "accuracy": acc}


# --------------------------------------------------------------------------- pure frontier


def test_frontier_and_ratios_on_hand_made_points():
    plain = [_p("A", 100, 80.0), _p("B", 200, 85.0), _p("C", 150, 79.0), _p("D", 400, 90.0), _p("I", 500, 95.0),
             _p("J", 450, 90.0)]
    mst = [_p("E", 50, 78.0), _p("F", 60, 86.0), _p("G", 300, 91.0), _p("H", 70, 85.0)]
    # C (150, 79) is beaten by A (100, 80); J (450, 90) by D (400, 90); H (70, 85) by F (60, 86).
    assert [p["id"] for p in pareto_frontier(plain)] == ["A", "B", "D", "I"]
    assert [p["id"] for p in pareto_frontier(mst)] == ["E", "F", "G"]
    rows = frontier_ratios(plain, mst)
    assert [(r["accuracy"], r["plain_id"], r["plain_luts"], r["mst_id"], r["mst_luts"]) for r in rows] == [
        (80.0, "A", 100, "F", 60),   # E (78 %) is cheaper but below 80 %
        (85.0, "B", 200, "F", 60),
        (90.0, "D", 400, "G", 300),
        (95.0, "I", 500, None, None),  # no MST point reaches 95 %
    ]
    assert [r["ratio"] for r in rows[:3]] == pytest.approx([100 / 60, 200 / 60, 400 / 300])
    assert rows[3]["ratio"] is None


def test_frontier_ties_keep_the_more_accurate_then_the_lower_id():
    pts = [_p("b", 10, 50.0), _p("a", 10, 50.0), _p("c", 10, 60.0), _p("d", 20, 60.0), _p("e", 5, 40.0)]
    assert [p["id"] for p in pareto_frontier(pts)] == ["e", "c"]
    # equal accuracy: the cheaper plain engine sets the level, an equally accurate MST engine reaches it
    rows = frontier_ratios([_p("p", 30, 70.0)], [_p("m", 20, 70.0), _p("n", 10, 69.99)])
    assert rows[0]["mst_id"] == "m" and rows[0]["ratio"] == pytest.approx(1.5)


# --------------------------------------------------------------------------- a tiny real sweep


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """Digits classes 0-3 pooled 2x2 to 16 features: networks of a few hundred LUTs."""
    from mstbnn.nn.data import load_digits

    d = load_digits()

    def pool(x, y):
        keep = y < 4
        return x[keep].reshape(-1, 4, 2, 4, 2).sum(axis=(2, 4)).reshape(-1, 16), y[keep]

    xtr, ytr = pool(d.x_train, d.y_train)
    xte, yte = pool(d.x_test, d.y_test)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte[:80], y_test=yte[:80])
    return path


def _grid(dataset):
    return sweep.parse_grid(dataset=str(dataset), widths="4,8", lambdas="2", max_depths="2", seeds="0", epochs=2,
                            mst_warmup=0, mst_ramp=0)


@pytest.fixture(scope="module")
def tiny_sweep(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "s"
    # two local processes: the pool path, and half the wall time on two cores
    result = sweep.run_sweep(out, _grid(tiny_dataset), jobs=2, progress=False)
    return out, result


def test_tiny_sweep_writes_json_table_and_plot(tiny_sweep):
    out, result = tiny_sweep
    data = json.loads((out / "sweep.json").read_text())
    assert data["complete"] and data["generator"] == sweep.__version__
    ids = [r["id"] for r in data["points"]]
    assert ids == ["w4x1-lam0-h2-s0", "w4x1-lam2-h2-s0", "w8x1-lam0-h2-s0", "w8x1-lam2-h2-s0"]
    device = data["device"]
    for r in data["points"]:
        # the counts are yosys' own, as recorded by `mstbnn synth --synth-only` in the point's artefact
        runs = json.loads((out / "points" / r["id"] / "net" / "synth.json").read_text())["runs"]
        for engine in ("reuse", "baseline"):
            m = r["engines"][f"{device}/{engine}"]
            run = runs[f"{device}/{engine}/synth-only"]
            assert m["luts"] == run["resources"]["lut"]["used"] > 0
            assert m["ffs"] == run["resources"]["ff"]["used"] > 0
        assert r["digest"] == network_digest(out / "points" / r["id"] / "net")
        assert 0 < r["accuracy"] <= 100 and r["correct"] == round(r["accuracy"] * r["tested"] / 100)
    # the regulariser was on: the lambda-2 networks differ from the plain ones
    assert data["points"][0]["digest"] != data["points"][1]["digest"]
    # frontiers: made of the measured engines, the plain side of baseline engines, the MST side of reuse engines
    points = {f"{r['id']}/{e}": (r["accuracy"], r["engines"][f"{device}/{e}"]["luts"])
              for r in data["points"] for e in ("reuse", "baseline")}
    a = data["analysis"]
    assert a["plain_frontier"] and all(p["id"].endswith("/baseline") for p in a["plain_frontier"])
    assert a["mst_frontier"] and all(p["id"].endswith("/reuse") for p in a["mst_frontier"])
    for p in a["plain_frontier"] + a["mst_frontier"]:
        assert points[p["id"]] == (p["accuracy"], p["luts"])
    assert len(a["ratios"]) == len(a["plain_frontier"])
    table = (out / "frontier.md").read_text()
    for r in a["ratios"]:
        ratio = "not reached" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        assert f"| {r['accuracy']:.2f} % | {r['plain_id']} | {r['plain_luts']:,} |" in table
        assert ratio in table
    assert "mstbnn sweep -o" in table and "--widths 4,8" in table
    png = (out / "frontier.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_resuming_redoes_nothing(tiny_sweep, tiny_dataset, monkeypatch):
    out, _ = tiny_sweep
    before = {p: (out / p).read_bytes() for p in ("sweep.json", "frontier.md", "frontier.png")}

    def refuse(*args, **kwargs):
        raise AssertionError("a measured point was redone")

    for name in ("_train_point", "_compile_point", "_synth_engine"):
        monkeypatch.setattr(sweep, name, refuse)
    sweep.run_sweep(out, _grid(tiny_dataset), jobs=1, progress=False)
    assert {p: (out / p).read_bytes() for p in before} == before  # and the outputs are the same bytes


def test_resuming_redoes_only_what_is_stale(tiny_sweep, tiny_dataset, monkeypatch):
    out, _ = tiny_sweep
    specs = {s["id"]: s for s in sweep.point_specs(_grid(tiny_dataset), out)}
    spec = specs["w8x1-lam2-h2-s0"]
    assert all(sweep.point_is_measured(s) for s in specs.values())
    record_path = out / "points" / spec["id"] / "point.json"
    record = json.loads(record_path.read_text())
    key = f"{spec['device']}/baseline"
    # another generator version, or a network that changed on disk: not measured
    for change in ({"generator": "0.0.0"}, {"digest": "0" * 64}):
        record_path.write_text(json.dumps({**record, **change}))
        assert not sweep.point_is_measured(spec)
    # one engine's count missing: only that engine is synthesised again, nothing is trained
    stale = json.loads(json.dumps(record))
    del stale["engines"][key]
    record_path.write_text(json.dumps(stale))
    calls = []
    real = sweep._synth_engine

    def counting(net_dir, device, baseline, log, place=False):
        calls.append((str(net_dir), baseline))
        return real(net_dir, device, baseline, log, place)

    def refuse(*args, **kwargs):
        raise AssertionError("a trained point was trained again")

    monkeypatch.setattr(sweep, "_synth_engine", counting)
    monkeypatch.setattr(sweep, "_train_point", refuse)
    monkeypatch.setattr(sweep, "_compile_point", refuse)
    sweep.run_sweep(out, _grid(tiny_dataset), jobs=1, progress=False)
    assert calls == [(str(out / "points" / spec["id"] / "net"), True)]
    assert json.loads(record_path.read_text())["engines"][key]["luts"] == record["engines"][key]["luts"]


# --------------------------------------------------------------------------- bad flags


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--widths", "4,x"], "--widths: 'x' is not an integer"),
        (["--widths", "0"], "--widths: 0 is below 1"),
        (["--widths", "4,4"], "repeats"),
        (["--lambdas", "-1"], "--lambdas"),
        (["--lambdas", "nan"], "--lambdas"),
        (["--max-depths", "0"], "--max-depths: 0 is below 1"),
        (["--seeds", ""], "--seeds: empty list"),
        (["--epochs", "0"], "--epochs: 0 is below 1"),
        (["--epochs", "two"], "--epochs: 'two' is not an integer"),
        (["--jobs", "0"], "--jobs: 0 is below 1"),
        (["--family", "virtex"], "--family: unknown device family"),
        (["--cost", "area"], "--cost: unknown tree cost"),
        (["--dataset", "nosuch"], "unknown dataset"),
    ],
)
def test_bad_flags_are_one_line_errors_before_any_work(flags, message, tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sweep", "-o", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mstbnn: error: ") and "\n" not in err and message in err
    assert not out.exists()


def test_output_that_is_a_file_or_a_foreign_json_is_refused(tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("x")
    assert main(["sweep", "-o", str(f)]) == 2
    d = tmp_path / "d"
    d.mkdir()
    (d / "sweep.json").write_text('{"format": "other"}')
    assert main(["sweep", "-o", str(d)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "not a directory" in err[0] and "not an mstbnn sweep" in err[1]
