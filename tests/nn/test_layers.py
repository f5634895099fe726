import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mstbnn.nn.layers import BatchNorm, BinaryConv2d, BinaryLinear, InputQuantize, binarize, sign_ste


def test_sign_ste_forward_and_clipped_gradient():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    y = sign_ste(x)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1]  # sign(0) = +1
    y.sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 1, 1, 0]


@pytest.mark.parametrize("n_in,n_out", [(5, 3), (64, 17)])
def test_binary_linear_uses_signs(n_in, n_out):
    torch.manual_seed(0)
    layer = BinaryLinear(n_in, n_out)
    x = torch.randint(0, 2, (4, n_in)).float() * 2 - 1
    w = torch.where(layer.weight >= 0, 1.0, -1.0)
    assert torch.equal(layer(x), x @ w.T)
    assert layer.latent_matrix().shape == (n_out, n_in)


@pytest.mark.parametrize("pad_value", [-1.0, 0.0])
@pytest.mark.parametrize("c_in,c_out,k,stride,padding", [(1, 4, 3, 1, 1), (3, 5, 3, 2, 1), (2, 3, 3, 1, 0)])
def test_binary_conv_pads_with_pad_value(pad_value, c_in, c_out, k, stride, padding):
    torch.manual_seed(1)
    conv = BinaryConv2d(c_in, c_out, k, stride, padding, pad_value=pad_value)
    x = torch.randint(0, 2, (2, c_in, 6, 7)).float() * 2 - 1
    w = torch.where(conv.weight >= 0, 1.0, -1.0)
    xp = F.pad(x, (padding,) * 4, value=pad_value)
    assert torch.equal(conv(x), F.conv2d(xp, w, stride=stride))
    if padding and pad_value == -1.0:
        # Zero padding would give a different border: the pad value matters.
        assert not torch.equal(conv(x), F.conv2d(x, w, stride=stride, padding=padding))


def test_batchnorm_eval_is_elementwise_and_train_uses_batch_stats():
    torch.manual_seed(2)
    bn = BatchNorm(3)
    y = torch.randn(16, 3, 4, 4) * 5 + 2
    bn.train()
    out = bn(y)
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert not torch.equal(bn.running_mean, torch.zeros(3))
    bn.eval()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.5, -0.5, 0.0]))
    full = bn(y)
    # Same numbers whether the element sits in a 4-D map or a flat (R, C) tensor.
    flat = bn(y.permute(0, 2, 3, 1).reshape(-1, 3)).reshape(16, 4, 4, 3).permute(0, 3, 1, 2)
    assert torch.equal(full, flat)
    assert torch.equal(full[:, 2], bn.bias[2].expand(16, 4, 4))


def test_input_quantize_modes():
    x = torch.tensor([[0, 3, 4, 16]])
    q = InputQuantize((4,), "threshold", 4)
    assert q(x).tolist() == [[-1, -1, 1, 1]]
    assert InputQuantize((4,), "int")(x).tolist() == [[0, 3, 4, 16]]
    with pytest.raises(ValueError):
        InputQuantize((4,), "float")


def test_binarize_matches_sign():
    x = torch.tensor([-0.1, 0.0, 0.1])
    assert binarize(x).tolist() == [False, True, True]
    assert np.array_equal(binarize(x).numpy(), (sign_ste(x) > 0).numpy())
