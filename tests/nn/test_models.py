import pytest
import torch

from mstbnn.nn.models import build_model, model_from_config


@pytest.mark.parametrize("hidden", [[16], [32, 8]])
@pytest.mark.parametrize("input_mode", ["threshold", "int"])
def test_mlp_shapes_and_integer_scores(hidden, input_mode):
    m = build_model("mlp", (64,), 10, hidden=hidden, input_mode=input_mode, input_threshold=4).eval()
    x = torch.randint(0, 17, (5, 64))
    s = m(x)
    assert s.shape == (5, 10)
    assert torch.equal(s, s.round())
    assert [st.layer.out_features for st in m.stages] == hidden + [10]
    assert m.stages[-1].last and not any(st.last for st in m.stages[:-1])


@pytest.mark.parametrize("shape,channels,n_pools", [((1, 8, 8), [4, 6], 2), ((1, 28, 28), [4, 4, 4], 3),
                                                    ((3, 6, 6), [5], 1)])
def test_cnn_pools_while_map_is_wide(shape, channels, n_pools):
    m = build_model("cnn", shape, 10, channels=channels, hidden=[12]).eval()
    assert sum(1 for st in m.stages if st.pool) == n_pools
    x = torch.randint(0, 256, (2,) + shape)
    assert m(x).shape == (2, 10)


@pytest.mark.parametrize("width", [0.0625, 0.125])
def test_vgg_small_width(width):
    m = build_model("vgg_small", (3, 32, 32), 10, width=width, input_mode="int").eval()
    convs = [st.layer.out_channels for st in m.stages[:-1]]
    assert convs == [max(1, round(b * width)) for b in (128, 128, 256, 256, 512, 512)]
    assert m.stages[0].layer.pad_value == 0.0 and m.stages[1].layer.pad_value == -1.0
    assert m(torch.randint(0, 256, (2, 3, 32, 32))).shape == (2, 10)


def test_model_from_config_rebuilds_same_architecture():
    m = build_model("cnn", (1, 8, 8), 10, channels=[4], hidden=[])
    m2 = model_from_config(m.config)
    assert [type(s.layer) for s in m.stages] == [type(s.layer) for s in m2.stages]
    m2.load_state_dict(m.state_dict())


@pytest.mark.parametrize("bad", [dict(name="resnet"), dict(name="cnn", shape=(64,)),
                                 dict(name="vgg_small", shape=(3, 4, 4))])
def test_bad_model_requests(bad):
    with pytest.raises(ValueError):
        build_model(bad["name"], bad.get("shape", (1, 8, 8)), 10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pool_before_bn_equals_or_pool_of_bits_for_nonnegative_scale(seed):
    """Training pools sums before BN; eval ORs bits after it: identical when the BN scale is >= 0."""
    g = torch.Generator().manual_seed(seed)
    m = build_model("cnn", (1, 8, 8), 10, channels=[6], hidden=[])
    stage = m.stages[0]
    bn = stage.norm
    with torch.no_grad():
        bn.weight.copy_(torch.randn(6, generator=g))
        bn.weight[0] = 0.0
        bn.running_mean.copy_(torch.randn(6, generator=g) * 3)
        bn.running_var.copy_(torch.rand(6, generator=g) + 0.1)
        bn.bias.copy_(torch.randn(6, generator=g))
    m.clamp_bn_scale()
    assert float(bn.weight.detach().min()) >= 0.0
    m.eval()
    x = torch.randint(0, 2, (8, 1, 8, 8)).float() * 2 - 1
    y = stage.layer(x)
    pooled_first = torch.where(bn.eval_forward(torch.nn.functional.max_pool2d(y, 2)) >= 0, 1.0, -1.0)
    assert torch.equal(stage(x), pooled_first)
