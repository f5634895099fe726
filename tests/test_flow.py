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


def _refusing_synth(cells_by_device, built):
    """A stand-in for synth_network: the real fit check on a design of the given iCE40 cell count per device."""
    from mstbnn.boards.synth import check_fit, estimate_fit
    from mstbnn.devices import get_device

    def synth_network(net_dir, device_name, *, baseline=False, stream=None):
        device = get_device(device_name)
        cells = cells_by_device[device_name]
        check_fit(estimate_fit({"luts": cells // 2, "ffs": cells - cells // 2}, device), device, force=False)
        built.append(device_name)
        return {"device": device_name}

    return synth_network


def test_demo_synth_moves_past_a_may_not_route_refusal(monkeypatch, capsys):
    # 5,000 cells: inside the up5k's 5,280 but above its routable share; fine on the hx8k.
    import mstbnn.boards.cli
    from mstbnn.flow import _synth_smallest

    built = []
    monkeypatch.setattr(mstbnn.boards.cli, "synth_network",
                        _refusing_synth({"ice40-up5k": 5000, "ice40-hx8k": 5000}, built))
    assert _synth_smallest("net", ("ice40-up5k", "ice40-hx8k"), baseline=False) == {"device": "ice40-hx8k"}
    assert built == ["ice40-hx8k"]
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("  design may not route on ice40-up5k")


def test_demo_synth_reports_why_no_device_took_the_design(monkeypatch, capsys):
    import mstbnn.boards.cli
    from mstbnn.flow import _synth_smallest

    built = []
    monkeypatch.setattr(mstbnn.boards.cli, "synth_network",
                        _refusing_synth({"ice40-up5k": 9000, "ice40-hx8k": 7000}, built))
    assert _synth_smallest("net", ("ice40-up5k", "ice40-hx8k"), baseline=True) == "may not route"
    monkeypatch.setattr(mstbnn.boards.cli, "synth_network",
                        _refusing_synth({"ice40-up5k": 9000, "ice40-hx8k": 9000}, built))
    assert _synth_smallest("net", ("ice40-up5k", "ice40-hx8k"), baseline=True) == "does not fit"
    assert built == []
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all(line.startswith("  design ") for line in lines)
