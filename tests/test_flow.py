"""`mstbnn compile model.pt`: checkpoint -> artefact with its test set and the training's tree settings."""

import numpy as np

from mstbnn.cli import main
from mstbnn.compiler import io
from mstbnn.compiler.execute import run


def test_compile_checkpoint_ships_test_set_and_keeps_training_depth(tmp_path, capsys):
    pt = tmp_path / "m.pt"
    assert main(["train", "--model", "mlp", "--hidden", "12", "--epochs", "1", "--max-depth", "2",
                 "--quiet", "-o", str(pt)]) == 0
    assert main(["compile", str(pt), "-o", str(tmp_path / "a")]) == 0
    net = io.load(tmp_path / "a")
    assert max(l.schedule.height for _, l in net.binary_layers()) <= 2
    with np.load(tmp_path / "a" / "testset.npz") as f:
        x, y = f["x"], f["y"]
    assert x.shape == (450, 64) and y.shape == (450,)
    accuracy = np.mean(run(net, x, "reuse").classes == y)
    assert f"test accuracy {100 * accuracy:.2f}%" in capsys.readouterr().out
    # same checkpoint, same artefact, byte for byte
    assert main(["compile", str(pt), "-o", str(tmp_path / "b")]) == 0
    for name in ("network.json", "network.npz", "testset.npz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
