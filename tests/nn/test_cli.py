import numpy as np
import pytest
import torch

from mstbnn.cli import main
from mstbnn.nn.export import load_checkpoint, load_model


def _train(tmp_path, name, *extra):
    out = tmp_path / name
    rc = main(["train", "--model", "mlp", "--hidden", "16", "--epochs", "2", "--mst-lambda", "3", "--mst-warmup",
               "0", "--quiet", "-o", str(out), *extra])
    return rc, out


def test_train_writes_loadable_checkpoint_and_final_line(tmp_path, capsys):
    rc, out = _train(tmp_path, "m.pt", "--max-depth", "3", "--negation", "--weighting", "xnor")
    assert rc == 0 and out.is_file()
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("test accuracy ") and "total XNOR reduction" in line
    net = load_checkpoint(out)
    assert net.meta["train"] == {"max_depth": 3, "negation": True, "mst_lambda": 3.0, "seed": 0, "world_size": 1}
    assert [l.kind for l in net.layers] == ["input", "dense", "threshold", "dense"]


def test_same_seed_same_checkpoint(tmp_path):
    _, a = _train(tmp_path, "a.pt", "--seed", "5")
    _, b = _train(tmp_path, "b.pt", "--seed", "5")
    ma, _ = load_model(a)
    mb, _ = load_model(b)
    sa, sb = ma.state_dict(), mb.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("args,needle", [
    (["--dataset", "nowhere.npz"], "not found"),
    (["--dataset", "mnist"], "needs --data-dir"),
    (["--epochs", "0"], "--epochs"),
    (["--mst-lambda", "-1"], "--mst-lambda"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, needle):
    out = tmp_path / "m.pt"
    rc = main(["train", "--quiet", "-o", str(out), *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and needle in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_cnn_on_user_npz(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.integers(0, 256, (40, 8, 8)), y_train=rng.integers(0, 3, 40),
             x_test=rng.integers(0, 256, (10, 8, 8)), y_test=rng.integers(0, 3, 10))
    out = tmp_path / "c.pt"
    rc = main(["train", "--model", "cnn", "--channels", "4", "--hidden", "", "--dataset", str(tmp_path / "d.npz"),
               "--input", "int", "--epochs", "1", "--quiet", "-o", str(out)])
    assert rc == 0
    net = load_checkpoint(out)
    assert net.layers[0].mode == "int" and net.layers[0].bits == 8 and net.n_classes == 3


def test_int_input_too_wide_for_float32_is_refused(tmp_path, capsys):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "wide.npz", x_train=rng.integers(0, 65536, (8, 512)), y_train=rng.integers(0, 2, 8),
             x_test=rng.integers(0, 65536, (4, 512)), y_test=rng.integers(0, 2, 4))
    out = tmp_path / "w.pt"
    rc = main(["train", "--dataset", str(tmp_path / "wide.npz"), "--input", "int", "--epochs", "1", "--quiet",
               "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "2^24" in err and not out.exists()
