"""Export exactness: the compiled network reproduces torch's eval mode on every bit."""

import numpy as np
import pytest
import torch

from mstbnn.compiler import run, schedule_network, validate
from mstbnn.errors import UserError
from mstbnn.nn.export import fold_threshold, load_checkpoint, load_model, save_checkpoint, to_network
from mstbnn.nn.layers import BatchNorm, binarize
from mstbnn.nn.models import build_model
from mstbnn.nn.train import TrainConfig, predict, train


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("y_range", [(-9, 9), (-300, 300)])
def test_fold_threshold_exact_for_every_integer(seed, y_range):
    g = torch.Generator().manual_seed(seed)
    c = 12
    bn = BatchNorm(c).eval()
    with torch.no_grad():
        bn.weight.copy_(torch.randn(c, generator=g))
        bn.weight[0] = 0.0  # constant channel
        bn.weight[1] = -1e-3
        bn.bias.copy_(torch.randn(c, generator=g))
        bn.bias[2] = 0.0  # threshold exactly on an integer: sign(0) = +1 decides
        bn.running_mean.copy_(torch.randint(-5, 6, (c,), generator=g).float() + 0.5 * (torch.arange(c) % 2))
        bn.running_mean[2] = 3.0
        bn.running_var.copy_(torch.rand(c, generator=g) * 10 + 0.1)
    t, d = fold_threshold(bn, *y_range)
    ys = torch.arange(y_range[0], y_range[1] + 1, dtype=torch.float32)
    want = binarize(bn(ys[:, None].repeat(1, c))).numpy()
    yi = ys.numpy().astype(np.int64)[:, None]
    got = np.where(d[None] > 0, yi >= t[None], yi <= t[None])
    assert np.array_equal(got, want)
    assert set(np.unique(d)) <= {-1, 1}
    assert want[:, 2][yi[:, 0] == 3].all()  # tie at BN output 0 -> bit 1


def _check_trace(model, net, x):
    """Every IR layer's output equals the torch eval trace; predictions agree."""
    torch_trace = model.eval().trace(torch.as_tensor(x))
    for mode in ("direct", "reuse"):
        tr = run(net, x, mode=mode)
        assert len(tr.layers) == len(torch_trace)
        for (kind, value), lt in zip(torch_trace, tr.layers):
            v = value.numpy()
            if kind == "input":
                if lt.bits is not None:
                    assert np.array_equal(lt.bits, v > 0)
                else:
                    assert np.array_equal(lt.values, v.astype(np.int64))
            elif kind == "sums":
                assert np.array_equal(lt.sums, v.astype(np.int64))
                assert np.array_equal(v, np.round(v))
            else:
                assert np.array_equal(lt.bits, v > 0)
        assert np.array_equal(tr.classes, predict(model, x))
    return tr


@pytest.mark.parametrize("model_name,kw", [
    ("mlp", dict(hidden=[32, 24], input_mode="threshold")),
    ("mlp", dict(hidden=[20], input_mode="int")),
    ("cnn", dict(channels=[16, 16], hidden=[32], input_mode="threshold")),
    ("cnn", dict(channels=[12], hidden=[], input_mode="int")),
])
@pytest.mark.parametrize("negation,max_depth", [(False, None), (True, 2)])
def test_trained_export_is_bit_exact_on_whole_digits_test_set(digits, model_name, kw, negation, max_depth):
    data = digits if model_name == "mlp" else digits.as_images()
    torch.manual_seed(0)
    model = build_model(model_name, data.sample_shape, data.n_classes, input_threshold=4, **kw)
    cfg = TrainConfig(epochs=3, mst_lambda=5.0, mst_warmup=1, mst_ramp=0, negation=negation, max_depth=max_depth)
    train(model, data, cfg)
    net = to_network(model)
    validate(net)
    assert net.layers[0].bits == 5 and net.meta["train"]["negation"] == negation
    scheduled = schedule_network(net, max_depth=max_depth, negation=negation)
    tr = _check_trace(model, scheduled, data.x_test)
    # Not a degenerate network: well above chance (10 %) after three epochs.
    assert (tr.classes == data.y_test).mean() > 0.3


@pytest.mark.parametrize("seed", [0, 1])
def test_export_exact_with_negative_and_zero_bn_scales(digits, seed):
    """Random BN statistics (negative, zero, tiny scales) through a conv model with pooling."""
    data = digits.as_images()
    torch.manual_seed(seed)
    model = build_model("cnn", data.sample_shape, 10, channels=[8, 8], hidden=[16], input_threshold=4).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for st in model.stages[:-1]:
            bn = st.norm
            c = bn.num_features
            bn.weight.copy_(torch.randn(c, generator=g))
            bn.weight[0] = 0.0
            bn.bias.copy_(torch.randn(c, generator=g) * 0.5)
            bn.running_mean.copy_(torch.randn(c, generator=g) * 3)
            bn.running_var.copy_(torch.rand(c, generator=g) * 5 + 0.01)
    net = to_network(model, bits=5)
    dirs = np.concatenate([l.direction for l in net.layers if l.kind == "threshold"])
    assert (dirs == -1).any() and (dirs == 1).any()
    _check_trace(model, schedule_network(net), data.x_test)


def test_vgg_small_tiny_export_exact():
    torch.manual_seed(3)
    model = build_model("vgg_small", (3, 32, 32), 10, width=1 / 32, input_mode="int").eval()
    x = np.random.default_rng(0).integers(0, 256, (6, 3, 32, 32))
    net = to_network(model, bits=8)
    validate(net)
    _check_trace(model, schedule_network(net, max_depth=3), x)


def test_checkpoint_roundtrip(tmp_path, digits):
    torch.manual_seed(0)
    model = build_model("mlp", (64,), 10, hidden=[16], input_threshold=4)
    train(model, digits, TrainConfig(epochs=1))
    path = save_checkpoint(model, tmp_path / "m.pt", history=[{"epoch": 1}])
    net = load_checkpoint(path)
    assert np.array_equal(run(net, digits.x_test).classes, predict(model, digits.x_test))
    again, payload = load_model(path)
    assert payload["history"] == [{"epoch": 1}]
    assert not list(tmp_path.glob("*.tmp"))


def test_checkpoint_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(UserError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="format tag"):
        load_checkpoint(tmp_path / "other.pt")
    model = build_model("mlp", (64,), 10, hidden=[16])
    save_checkpoint(model, tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["config"]["hidden"] = [17]
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(UserError, match="do not match"):
        load_checkpoint(tmp_path / "mismatch.pt")


@pytest.mark.parametrize("fan_in,bits,ok", [(256, 16, True), (512, 16, False), (8192, 12, False), (4096, 12, True)])
def test_int_input_export_refuses_inexact_float32_sums(fan_in, bits, ok):
    model = build_model("mlp", (fan_in,), 2, hidden=[4], input_mode="int").eval()
    if ok:
        assert to_network(model, bits=bits).layers[0].bits == bits
    else:
        with pytest.raises(ValueError, match="2\\^24"):
            to_network(model, bits=bits)
