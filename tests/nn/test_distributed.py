"""Data-parallel training: ``torchrun --nproc-per-node 2 -m mstbnn train`` with gloo on CPU.

The torchrun runs are real (two processes each); everything else runs in
process. Thread counts stay at one per process: the CI machine has 2 cores.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mstbnn.cli import main
from mstbnn.compiler import io
from mstbnn.compiler.execute import run
from mstbnn.nn.export import load_model
from mstbnn.nn.train import predict

ROOT = Path(__file__).resolve().parents[2]
# A tiny mlp, regulariser on from the first step so the trees matter at once.
TINY = ["--hidden", "16", "--epochs", "2", "--mst-lambda", "3", "--mst-warmup", "0", "--quiet"]


@pytest.fixture(scope="module")
def small_digits(tmp_path_factory):
    """digits with 128 training samples (2 steps of 64 per epoch) and the whole test set (450)."""
    from mstbnn.nn.data import load_digits

    d = load_digits()
    path = tmp_path_factory.mktemp("data") / "digits128.npz"
    np.savez(path, x_train=d.x_train[:128], y_train=d.y_train[:128], x_test=d.x_test, y_test=d.y_test)
    return path


def _torchrun(k: int, *args: str, script: Path | None = None, timeout: float = 300):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    target = ["-m", "mstbnn"] if script is None else [str(script)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={k}", *target,
           "train", *args]
    t0 = time.monotonic()
    # Own session: on a timeout the launcher *and* its ranks are killed, no orphan keeps waiting.
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            pytest.fail(f"torchrun did not finish within {timeout} s: a rank hangs")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), time.monotonic() - t0


def _errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if "mstbnn: error:" in line]


@pytest.fixture(scope="module")
def two_rank_runs(tmp_path_factory, small_digits):
    """Two identical 2-rank trainings, each into its own empty directory."""
    runs = []
    for name in ("a", "b"):
        d = tmp_path_factory.mktemp(f"ddp-{name}")
        proc, _ = _torchrun(2, *TINY, "--dataset", str(small_digits), "--seed", "1", "-o", str(d / "m.pt"))
        runs.append((proc, d))
    return runs


def test_two_ranks_write_one_checkpoint_that_compiles_bit_exact(two_rank_runs, tmp_path, digits):
    proc, d = two_rank_runs[0]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in d.iterdir()) == ["m.pt"]  # one file, no temporaries
    # Rank 0 alone prints the summary.
    assert sum(line.startswith("test accuracy ") for line in proc.stdout.splitlines()) == 1
    model, payload = load_model(d / "m.pt")
    assert payload["config"]["train"]["world_size"] == 2 and len(payload["history"]) == 2
    art = tmp_path / "art"
    assert main(["compile", str(d / "m.pt"), "-o", str(art)]) == 0
    net = io.load(art)
    expected = predict(model, digits.x_test)
    for mode in ("direct", "reuse"):
        assert np.array_equal(run(net, digits.x_test, mode=mode).classes, expected)
    # The history's accuracy is the compiled network's (test set sharded over the ranks, counts summed).
    assert payload["history"][-1]["test_acc"] == pytest.approx(100.0 * np.mean(expected == digits.y_test))


def test_same_world_size_and_seed_give_the_same_checkpoint_bytes(two_rank_runs):
    (pa, da), (pb, db) = two_rank_runs
    assert pa.returncode == 0 and pb.returncode == 0
    assert (da / "m.pt").read_bytes() == (db / "m.pt").read_bytes()


def test_two_ranks_follow_one_process_up_to_float_order(two_rank_runs, small_digits, tmp_path):
    """Same global batch, same seed: after 4 steps every weight and statistic agrees to float rounding.

    A wrong gradient (unsynchronised, mis-scaled), per-shard BatchNorm
    statistics, shards that are not the single process's batch or unreduced
    metrics differ by 1e-3 or more. The one exception is inherent: a
    first-layer weight whose input bit is constant has a gradient that is 0
    in exact arithmetic (BatchNorm removes the batch mean), so it is rounding
    noise, and Adam turns noise of either sign into a step of about lr. Over
    many epochs the runs drift apart (measured in docs/training.md).
    """
    proc, d = two_rank_runs[0]
    assert proc.returncode == 0
    assert main(["train", *TINY, "--dataset", str(small_digits), "--seed", "1", "-o", str(tmp_path / "one.pt")]) == 0
    two, p2 = load_model(d / "m.pt")
    one, p1 = load_model(tmp_path / "one.pt")
    s2, s1 = two.state_dict(), one.state_dict()
    with np.load(small_digits) as f:
        bits = f["x_train"] >= one.config["input_threshold"]
    constant = torch.as_tensor((bits == bits[:1]).all(axis=0))
    assert 0 < int(constant.sum()) < 32
    for k in s1:
        a, b = s2[k].double(), s1[k].double()
        if k == "stages.0.layer.weight":
            a, b = a[:, ~constant], b[:, ~constant]
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), k
    for h2, h1 in zip(p2["history"], p1["history"]):
        # The penalty sums distances over the noisy weights too.
        assert h2.pop("penalty") == pytest.approx(h1.pop("penalty"), rel=1e-3)
        assert h2 == pytest.approx(h1, rel=1e-6)


FAULT = """
import os, sys, time
from mstbnn.errors import UserError
from mstbnn.nn import regularizer

calls = [0]
real = regularizer.MSTRegularizer.penalty

def penalty(self):
    calls[0] += 1
    if os.environ["RANK"] == "1" and calls[0] == 3:
        if {hang!r}:
            time.sleep(600)
        raise UserError("planted failure on rank 1")
    return real(self)

regularizer.MSTRegularizer.penalty = penalty
from mstbnn.cli import main
sys.exit(main())
"""


@pytest.mark.parametrize("hang", [False, True], ids=["rank-raises", "rank-hangs"])
def test_rank_failure_stops_every_rank_with_one_report_and_no_checkpoint(tmp_path, small_digits, hang):
    script = tmp_path / "fault.py"
    script.write_text(FAULT.format(hang=hang))
    out = tmp_path / "out"
    out.mkdir()
    proc, seconds = _torchrun(2, *TINY, "--dataset", str(small_digits), "--dist-timeout", "5", "-o", str(out / "m.pt"),
                              script=script)
    assert proc.returncode != 0
    assert seconds < 200  # nobody waits for the 600 s sleep
    assert list(out.iterdir()) == []  # nothing written, not even a temporary
    errors = _errors(proc.stderr)
    if hang:  # only rank 0 can tell: it waited --dist-timeout for rank 1
        assert len(errors) == 1 and "did not answer within --dist-timeout 5 s" in errors[0], proc.stderr[-3000:]
    else:  # rank 1 says what went wrong, once; rank 0 at most adds that it stopped
        assert sum("planted failure on rank 1" in e for e in errors) == 1, proc.stderr[-3000:]
        assert len(errors) <= 2 and all("planted" in e or "rank 0 of 2: training stopped" in e for e in errors)
    assert "Traceback" not in "\n".join(line for line in proc.stderr.splitlines() if line.startswith("[rank"))


def _launch_env(monkeypatch, rank: int, world: int = 2):
    for k, v in {"RANK": rank, "LOCAL_RANK": rank, "WORLD_SIZE": world, "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": 1}.items():
        monkeypatch.setenv(k, str(v))


def test_world_size_not_dividing_the_batch_is_one_line_from_rank_0(tmp_path, capsys, monkeypatch):
    out = tmp_path / "m.pt"
    _launch_env(monkeypatch, rank=0)
    assert main(["train", "--batch-size", "63", "--quiet", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mstbnn: error: --batch-size 63") and "world size 2" in err and len(err.splitlines()) == 1
    # The other rank finds the same before any work and says nothing: the error appears once.
    _launch_env(monkeypatch, rank=1)
    assert main(["train", "--batch-size", "63", "--quiet", "-o", str(out)]) == 2
    assert capsys.readouterr().err == ""
    assert not out.exists()


def test_cuda_without_a_gpu_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "m.pt"
    assert main(["train", "--device", "cuda", "--quiet", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mstbnn: error: --device cuda: no CUDA GPU") and len(err.splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("env,needle", [
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not an integer"),
    ({"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "x", "MASTER_PORT": "1"}, "RANK=2 is outside 0..1"),
    ({"WORLD_SIZE": "2", "RANK": "0"}, "MASTER_ADDR and MASTER_PORT unset"),
])
def test_malformed_launch_environment_is_one_line(tmp_path, capsys, monkeypatch, env, needle):
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(["train", "--quiet", "-o", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


class _FakeDist:
    """What `_agree` needs of a Dist: this rank, K, and every rank's set-up error."""

    def __init__(self, rank, errors):
        self.rank, self.world_size, self.leader, self._errors = rank, len(errors), rank == 0, errors

    def gather(self, obj):
        assert obj == self._errors[self.rank]
        return list(self._errors)


@pytest.mark.parametrize("errors,message", [
    (["d.npz: not found", "d.npz: not found"], "d.npz: not found"),  # every rank alike: said once, plainly
    ([None, "d.npz: not found"], "rank 1 of 2: d.npz: not found"),  # one rank: which one
])
def test_a_set_up_error_of_any_rank_stops_all_and_rank_0_says_it(errors, message):
    from mstbnn.errors import UserError
    from mstbnn.nn.cli import _agree, _QuietExit

    with pytest.raises(UserError) as exc:
        _agree(_FakeDist(0, errors), errors[0])
    assert str(exc.value) == message
    with pytest.raises(_QuietExit):
        _agree(_FakeDist(1, errors), errors[1])
    _agree(_FakeDist(0, [None, None]), None)  # nobody failed: training goes on
