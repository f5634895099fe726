"""`mstbnn sweep`: frontier arithmetic on hand-made points, a tiny real sweep through yosys, resuming, bad flags,
the same sweep on a Dask LocalCluster (a worker killed mid-point), failed points reported."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

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


def _grid(dataset, widths="4,8"):
    return sweep.parse_grid(dataset=str(dataset), widths=widths, lambdas="2", max_depths="2", seeds="0", epochs=2,
                            mst_warmup=0, mst_ramp=0)


# The same grid as `mstbnn sweep` flags.
GRID_FLAGS = ["--lambdas", "2", "--max-depths", "2", "--seeds", "0", "--epochs", "2", "--mst-warmup", "0",
              "--mst-ramp", "0"]


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
        (["--retries", "-1"], "--retries: -1 is below 0"),
        (["--scheduler", "tcp://127.0.0.1:1", "--jobs", "2"], "with --scheduler the cluster's workers run"),
        (["--scheduler", "tcp://127.0.0.1:1", "--connect-timeout", "0"], "--connect-timeout: 0 must be a positive number"),
        (["--scheduler", "foo://x"], "not a scheduler address (unknown address scheme 'foo'"),
        (["--scheduler", "tls://127.0.0.1:1"], "scheme tls:// is not supported"),
        (["--scheduler", "127.0.0.1"], "not a scheduler address (missing port"),
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


# --------------------------------------------------------------------------- a Dask cluster

# Point functions the workers import from this module (tests/ is a package on sys.path).
KILLED_POINT = "w4x1-lam2-h2-s0"


def _attempts_file(spec) -> Path:
    """One line per attempt at a point (its process id), beside the sweep directory."""
    return Path(spec["dir"]).parents[2] / f"attempts-{spec['id']}.txt"


def _note_attempt(spec) -> int:
    with open(_attempts_file(spec), "a") as f:
        f.write(f"{os.getpid()}\n")
    return len(_attempts_file(spec).read_text().split())


def kill_worker_mid_point_once(spec):
    """measure_point; the first attempt at KILLED_POINT SIGKILLs its own worker process after training."""
    if _note_attempt(spec) == 1 and spec["id"] == KILLED_POINT:
        def die(*args, **kwargs):  # the model is trained and saved; compile never happens
            assert (Path(spec["dir"]) / sweep.MODEL_FILE).is_file()
            os.kill(os.getpid(), signal.SIGKILL)

        sweep._compile_point = die  # this worker process only, which is about to die
    return sweep.measure_point(spec)


def always_fail(spec):
    # What a worker in another working directory needs: absolute paths.
    assert Path(spec["dir"]).is_absolute() and Path(spec["inputs"]["dataset"]).is_file()
    _note_attempt(spec)
    raise RuntimeError(f"planted failure of {spec['id']}")


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    # memory_limit 0: no nanny kills a worker for memory on the shared machine, only our SIGKILL does.
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0",
                      memory_limit=0) as c:
        yield c


@pytest.fixture(scope="module")
def dask_sweep(tiny_dataset, cluster, tmp_path_factory):
    """The 4-wide half of the tiny grid on the cluster, one worker killed mid-point."""
    out = tmp_path_factory.mktemp("dask") / "s"
    result = sweep.run_sweep(out, _grid(tiny_dataset, widths="4"), scheduler=cluster.scheduler_address,
                             progress=False, measure=kill_worker_mid_point_once)
    return out, result


def test_a_dask_sweep_gives_the_local_sweeps_points_and_figures(dask_sweep, tiny_sweep, tiny_dataset, tmp_path,
                                                                monkeypatch):
    out, result = dask_sweep
    local_full, _ = tiny_sweep
    data = json.loads((out / "sweep.json").read_text())
    assert data["complete"] and data["failed"] == []
    assert [r["id"] for r in data["points"]] == ["w4x1-lam0-h2-s0", "w4x1-lam2-h2-s0"]
    # The local run of the same two points: the local sweep's own point directories, resumed (nothing redone).
    local = tmp_path / "local"
    for r in data["points"]:
        shutil.copytree(local_full / "points" / r["id"], local / "points" / r["id"])
    for name in ("_train_point", "_compile_point", "_synth_engine"):
        monkeypatch.setattr(sweep, name, lambda *a, **k: pytest.fail("the local points were measured already"))
    sweep.run_sweep(local, _grid(tiny_dataset, widths="4"), jobs=1, progress=False)
    # Same points (records, digests, accuracies, LUTs, FFs), same frontiers and ratios: the same bytes.
    assert (out / "sweep.json").read_bytes() == (local / "sweep.json").read_bytes()
    assert (out / "frontier.png").read_bytes() == (local / "frontier.png").read_bytes()
    assert (out / "frontier.md").read_text().replace(str(out), "DIR") == \
        (local / "frontier.md").read_text().replace(str(local), "DIR")
    # The artefacts are where the local run keeps them, and the cluster left no token behind.
    for r in data["points"]:
        assert r["digest"] == network_digest(out / "points" / r["id"] / "net")
    assert sorted(p.name for p in out.iterdir()) == ["frontier.md", "frontier.png", "points", "sweep.json"]


def test_a_worker_killed_mid_point_is_retried_and_the_sweep_completes(dask_sweep):
    out, result = dask_sweep
    pids = (out.parent / f"attempts-{KILLED_POINT}.txt").read_text().split()
    assert len(pids) == 2 and pids[0] != pids[1]  # killed once, redone by a live worker process
    assert "Traceback" not in (out / "points" / KILLED_POINT / "log.txt").read_text()
    assert result["complete"] and [r["id"] for r in result["points"]] == ["w4x1-lam0-h2-s0", KILLED_POINT]


@pytest.mark.slow
def test_place_on_the_cluster_gives_the_local_fmax(dask_sweep, tiny_dataset, cluster, tmp_path):
    """--place: one task per frontier network on the cluster, the same records as placing them locally."""
    out, _ = dask_sweep
    results = {}
    for where, flags in (("local", {"jobs": 1}), ("dask", {"scheduler": cluster.scheduler_address})):
        d = tmp_path / where
        shutil.copytree(out / "points", d / "points")
        results[where] = sweep.run_sweep(d, _grid(tiny_dataset, widths="4"), place=True, progress=False, **flags)
        assert results[where]["complete"] and results[where]["failed"] == []
    placed = [r["placed"] for r in results["dask"]["points"]]
    assert all(e["fits"] and e["fmax_mhz"] > 0 for p in placed for e in p.values())
    assert (tmp_path / "dask" / "sweep.json").read_bytes() == (tmp_path / "local" / "sweep.json").read_bytes()


@pytest.mark.parametrize("where", ["local", "dask"])
def test_a_point_that_keeps_failing_is_reported_never_dropped(where, tiny_sweep, tiny_dataset, tmp_path, request,
                                                             monkeypatch, capsys):
    out = tmp_path / "s"
    ok = "w4x1-lam0-h2-s0"
    shutil.copytree(tiny_sweep[0] / "points" / ok, out / "points" / ok)  # measured: only the other point runs
    monkeypatch.setattr(sweep, "measure_point", always_fail)
    flags = ["--scheduler", request.getfixturevalue("cluster").scheduler_address] if where == "dask" else []
    monkeypatch.chdir(tmp_path)  # -o relative to a directory the cluster's workers do not run in
    code = main(["sweep", "-o", "s", "--dataset", str(tiny_dataset), "--widths", "4", *GRID_FLAGS,
                 "--retries", "2", *flags])
    stderr = capsys.readouterr().err
    err = [line for line in stderr.splitlines() if "mstbnn:" in line]  # the rest is the progress bar
    assert code == 1 and "Traceback" not in stderr
    assert len(err) == 1 and err[0].startswith("mstbnn: error: 1 sweep point(s) failed after 2 retries")
    assert "w4x1-lam2-h2-s0" in err[0]
    data = json.loads((out / "sweep.json").read_text())
    assert not data["complete"] and [r["id"] for r in data["points"]] == [ok]
    assert data["failed"] == [{"id": "w4x1-lam2-h2-s0", "stage": "measure",
                               "error": "RuntimeError: planted failure of w4x1-lam2-h2-s0"}]
    assert len((tmp_path / "attempts-w4x1-lam2-h2-s0.txt").read_text().split()) == 3  # 1 + 2 retries
    assert "**Incomplete: 1 network(s) failed**" in (out / "frontier.md").read_text()


def test_a_sweep_whose_every_point_fails_still_writes_its_outputs(tiny_dataset, tmp_path, monkeypatch, capsys):
    out = tmp_path / "s"
    monkeypatch.setattr(sweep, "measure_point", always_fail)
    assert main(["sweep", "-o", str(out), "--dataset", str(tiny_dataset), "--widths", "4", *GRID_FLAGS,
                 "--retries", "0"]) == 1
    assert "mstbnn: error: 2 sweep point(s) failed after 0 retries" in capsys.readouterr().err
    data = json.loads((out / "sweep.json").read_text())
    assert data["points"] == [] and [f["id"] for f in data["failed"]] == ["w4x1-lam0-h2-s0", "w4x1-lam2-h2-s0"]
    assert (out / "frontier.png").read_bytes()[:4] == b"\x89PNG"


def test_point_specs_give_workers_absolute_paths_and_keep_the_settings_as_given(tiny_dataset, tmp_path,
                                                                                 monkeypatch):
    shutil.copy(tiny_dataset, tmp_path / "t.npz")
    monkeypatch.chdir(tmp_path)
    grid = sweep.parse_grid(dataset="t.npz", data_dir="d", widths="4", lambdas="2", epochs=1)
    for spec in sweep.point_specs(grid, "s"):
        assert spec["network"]["dataset"] == "t.npz" and spec["network"]["data_dir"] == "d"
        assert spec["inputs"] == {"dataset": str(tmp_path / "t.npz"), "data_dir": str(tmp_path / "d")}
    named = sweep.parse_grid(dataset="digits", widths="4", lambdas="2", epochs=1)
    assert sweep.point_specs(named, "s")[0]["inputs"] == {"dataset": "digits", "data_dir": None}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_is_one_line_and_writes_nothing(tiny_dataset, tmp_path):
    out = tmp_path / "s"
    address = f"tcp://127.0.0.1:{_free_port()}"
    # A real process: dask's own logging and clean-up would show here too.
    proc = subprocess.run([sys.executable, "-m", "mstbnn", "sweep", "-o", str(out), "--dataset", str(tiny_dataset),
                           "--scheduler", address, "--connect-timeout", "1"], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=str(Path(sweep.__file__).parents[1])))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"mstbnn: error: --scheduler {address}: cannot connect within 1 s")
    assert len(proc.stderr.splitlines()) == 1 and proc.stdout == ""
    assert not out.exists()


def test_scheduler_without_dask_installed_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    out = tmp_path / "s"
    assert main(["sweep", "-o", str(out), "--scheduler", "tcp://127.0.0.1:8786"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mstbnn: error: --scheduler needs dask and distributed") and "mstbnn[dask]" in err
    assert len(err.splitlines()) == 1 and not out.exists()


class _Client:
    """What DaskExecutor.prepare asks of a Client: run a function on every worker."""

    def __init__(self, answer):
        self.answer = answer

    def run(self, fn, *args):
        return {"tcp://10.0.0.7:40000": {**fn(*args), **self.answer}}


@pytest.mark.parametrize("answer, message", [
    ({"seen": False}, "cannot read"),
    ({"version": "0.0.1"}, "runs mstbnn 0.0.1"),
])
def test_a_worker_that_cannot_see_the_sweep_directory_or_runs_another_version_is_refused(answer, message, tmp_path):
    from mstbnn.errors import UserError
    from mstbnn.executors import DaskExecutor

    executor = DaskExecutor(_Client(answer), "tcp://sched:8786")
    with pytest.raises(UserError, match=message) as exc:
        executor.prepare(tmp_path)
    assert "tcp://10.0.0.7:40000" in str(exc.value) and list(tmp_path.iterdir()) == []  # token removed
    DaskExecutor(_Client({}), "tcp://sched:8786").prepare(tmp_path)  # the same worker, seeing it: accepted


def kill_once_then_answer(item):
    """Executor test job: the first attempt at "a" kills its own process; every job returns its id doubled."""
    marker = Path(item["marker"])
    if item["id"] == "a" and not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return item["id"] * 2


@pytest.mark.parametrize("where", ["local", "dask"])
def test_executors_rerun_a_job_whose_process_died(where, request, tmp_path):
    from mstbnn.executors import LocalExecutor, connect

    items = [{"id": name, "marker": str(tmp_path / "killed")} for name in ("a", "b", "c")]
    executor = (LocalExecutor(jobs=2) if where == "local"
                else connect(request.getfixturevalue("cluster").scheduler_address))
    try:
        executor.prepare(tmp_path)
        outcomes = list(executor.map(kill_once_then_answer, items, retries=1))
    finally:
        executor.close()
    assert (tmp_path / "killed").is_file()
    assert sorted((o.item["id"], o.result, o.error) for o in outcomes) == [("a", "aa", None), ("b", "bb", None),
                                                                          ("c", "cc", None)]
