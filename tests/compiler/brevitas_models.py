"""Brevitas 1W1A models shaped like FINN's bnn_pynq examples, exported to QONNX for the import tests.

- :class:`BinaryMLP`, :class:`BinaryCNV`: tiny models with switches for every
  refusal class and corner (export and validation in well under a second);
- :func:`bnn_pynq`: Brevitas's own FINN examples (TFC 784-64-64-64-10, SFC
  784-256-256-256-10, LFC 784-1024-1024-1024-10, CNV), untrained;
- :class:`CNVLike`: bnn_pynq's CNV with its modules and quantisers, small
  enough for a Verilator build in the default suite.

Every builder is seeded and gives BatchNorms random statistics, with some
negative and some zero scales, so the folded thresholds take both directions
and the constant case.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from brevitas.export import export_qonnx
from brevitas.nn import QuantConv2d, QuantHardTanh, QuantIdentity, QuantLinear
from brevitas.quant import (
    Int8ActPerTensorFixedPoint,
    Int8WeightPerTensorFloat,
    SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
    Uint8ActPerTensorFloat,
)

# FINN's bnn_pynq models binarise weights with a constant scale 1.0; Brevitas's own default is 0.1.
UnitBinaryWeight = SignedBinaryWeightPerTensorConst.let(scaling_const=1.0)


def _binary_act():
    return QuantIdentity(act_quant=SignedBinaryActPerTensorConst)


def _randomise_norm(norm: nn.Module, gen: torch.Generator, fan_in: int) -> None:
    """BN statistics on the scale of the integer sums; channel 0 negative, channel 1 zero scale."""
    c = norm.num_features
    with torch.no_grad():
        norm.weight.copy_(torch.randn(c, generator=gen))
        norm.weight[0] = -abs(norm.weight[0]) - 0.1
        norm.weight[1] = 0.0
        norm.bias.copy_(torch.randn(c, generator=gen))
        norm.running_mean.copy_(torch.randn(c, generator=gen) * fan_in ** 0.5)
        norm.running_var.copy_(torch.rand(c, generator=gen) * fan_in + 0.5)


def calibrate_norms(model: nn.Module, x: torch.Tensor, gen: torch.Generator) -> nn.Module:
    """Random BN scales and shifts, statistics measured on ``x``: every layer's bits stay balanced.

    Random weights with made-up BN statistics drift with depth into constant channels and
    one predicted class, which would leave most of the hardware untested. Here each
    BatchNorm gets random weights (channel 0 negative, channel 1 zero: falling and constant
    thresholds) and biases of about a standard deviation, then its running mean and
    variance are those of its input on ``x`` (one batch, only the BatchNorms in training
    mode, so dropout and quantisers behave as in eval).
    """
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    with torch.no_grad():
        for norm in norms:
            c = norm.num_features
            norm.weight.copy_(torch.randn(c, generator=gen))
            norm.weight[0] = -abs(norm.weight[0]) - 0.1
            norm.weight[1] = 0.0
            norm.bias.copy_(torch.randn(c, generator=gen) * 0.5)
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
            norm.train()
        model(x)
    return model.eval()


class BinaryMLP(nn.Module):
    """TFC/SFC shape: binary input quant, then QuantLinear + BN + binary activation per hidden layer, then QuantLinear.

    ``first`` picks the input quantiser: ``"binary"`` (BipolarQuant on the
    float input, after FINN's ``2 x - 1``) or ``"int8"`` (an 8-bit Quant).
    ``last_norm`` adds a BatchNorm after the score layer (per class: refused).
    """

    def __init__(self, in_features=16, hidden=(12, 10), classes=5, *, first="binary", last_bias=False,
                 last_norm=False, score_affine=None, weight_quant=UnitBinaryWeight, hidden_act=None, image=None,
                 preprocess=True, seed=0):
        super().__init__()
        self.image = image  # bnn_pynq's FC takes images and flattens them first
        self.preprocess = preprocess
        gen = torch.Generator().manual_seed(seed)
        self.first = first
        if first == "binary":
            self.input_quant = _binary_act()
        else:
            self.input_quant = QuantIdentity(act_quant=Int8ActPerTensorFixedPoint)
        layers = []
        width = in_features
        for h in hidden:
            linear = QuantLinear(width, h, bias=False, weight_quant=weight_quant)
            norm = nn.BatchNorm1d(h)
            with torch.no_grad():
                linear.weight.copy_(torch.randn(h, width, generator=gen))
            _randomise_norm(norm, gen, width)
            act = hidden_act() if hidden_act else QuantHardTanh(act_quant=SignedBinaryActPerTensorConst)
            layers += [linear, norm, act]
            width = h
        last = QuantLinear(width, classes, bias=last_bias, weight_quant=weight_quant)
        with torch.no_grad():
            last.weight.copy_(torch.randn(classes, width, generator=gen))
            if last_bias:
                last.bias.copy_(torch.randn(classes, generator=gen))
        layers.append(last)
        if last_norm:
            norm = nn.BatchNorm1d(classes)
            _randomise_norm(norm, gen, width)
            layers.append(norm)
        if score_affine is not None:
            layers.append(ScaleShift(*score_affine))
        self.features = nn.Sequential(*layers)
        self.in_features = in_features
        self.eval()

    def forward(self, x):
        if self.image is not None:
            x = x.view(x.shape[0], -1)
        if self.first == "binary" and self.preprocess:
            x = 2.0 * x - 1.0  # FINN's bnn_pynq preprocessing: [0, 1] -> [-1, 1]
        return self.features(self.input_quant(x))


class ScaleShift(nn.Module):
    """One scale and shift for the whole tensor (like bnn_pynq's TensorNorm in eval): the same for every class."""

    def __init__(self, scale: float, shift: float):
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x):
        return x * self.scale + self.shift


class BinaryCNV(nn.Module):
    """CNV shape without padding: conv-BN-sign, conv-BN-sign-maxpool, flatten, dense-BN-sign, dense."""

    def __init__(self, channels=(6, 8), image=(1, 10, 10), hidden=10, classes=4, *, padding=0, first="binary",
                 first_padding=None, pool_before_norm=False, seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        c_in, h, w = image
        self.first = first
        self.input_quant = _binary_act() if first == "binary" else QuantIdentity(act_quant=Int8ActPerTensorFixedPoint)
        layers = []
        for i, c in enumerate(channels):
            if i == 0 and first_padding is not None:
                padding, rest = first_padding, padding
            conv = QuantConv2d(c_in, c, 3, padding=padding, bias=False, weight_quant=UnitBinaryWeight)
            norm = nn.BatchNorm2d(c)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen))
            _randomise_norm(norm, gen, c_in * 9)
            h, w = h - 2 + 2 * padding, w - 2 + 2 * padding
            if i == 0 and first_padding is not None:
                padding = rest
            pool = i == len(channels) - 1
            if pool and pool_before_norm:
                layers += [conv, nn.MaxPool2d(2), norm, QuantIdentity(act_quant=SignedBinaryActPerTensorConst)]
            else:
                layers += [conv, norm, QuantIdentity(act_quant=SignedBinaryActPerTensorConst)]
                if pool:
                    layers.append(nn.MaxPool2d(2))
            if pool:
                h, w = h // 2, w // 2
            c_in = c
        layers.append(nn.Flatten())
        fan = c_in * h * w
        dense = QuantLinear(fan, hidden, bias=False, weight_quant=UnitBinaryWeight)
        norm = nn.BatchNorm1d(hidden)
        with torch.no_grad():
            dense.weight.copy_(torch.randn(hidden, fan, generator=gen))
        _randomise_norm(norm, gen, fan)
        last = QuantLinear(hidden, classes, bias=False, weight_quant=UnitBinaryWeight)
        with torch.no_grad():
            last.weight.copy_(torch.randn(classes, hidden, generator=gen))
        layers += [dense, norm, QuantIdentity(act_quant=SignedBinaryActPerTensorConst), last]
        self.features = nn.Sequential(*layers)
        self.image = image
        self.eval()

    def forward(self, x):
        if self.first == "binary":
            x = 2.0 * x - 1.0
        return self.features(self.input_quant(x))


def uint8_activation():
    return QuantIdentity(act_quant=Uint8ActPerTensorFloat)


def export(model: nn.Module, path, *, dynamo: bool) -> None:
    """QONNX export through either of torch's exporters (TorchScript: dynamo=False)."""
    shape = (1, *model.image) if getattr(model, "image", None) else (1, model.in_features)
    export_qonnx(model, torch.zeros(shape), str(path), dynamo=dynamo)


class CNVLike(nn.Module):
    """Brevitas's bnn_pynq CNV scaled down: the same modules and quantisers, fewer channels, a smaller image.

    As in ``brevitas_examples.bnn_pynq.models.CNV``: FINN's ``2 x - 1``, an 8-bit Q1.7 input
    ``QuantIdentity`` (the IR's ``int`` input), then per block an unpadded 3x3 ``QuantConv2d`` with
    binary weights of scale 1, ``BatchNorm2d``, a binary ``QuantIdentity`` and, where the block says
    so, a 2x2 max-pool after the sign; the flattened features go through ``QuantLinear`` +
    ``BatchNorm1d`` + binary act layers, and the last ``QuantLinear`` ends in a ``TensorNorm``.
    Defaults (sized for a quick Verilator build): 3x16x16 -> conv 4, conv 4, pool, conv 8, conv 8,
    pool -> 8 features -> 16 -> 16 -> 10 classes (CNV: 3x32x32, 64, 64, 128, 128, 256, 256, 512, 512).
    """

    def __init__(self, blocks=((4, False), (4, True), (8, False), (8, True)), fc=(16, 16), classes=10,
                 image=(3, 16, 16), seed=0):
        super().__init__()
        from brevitas.core.restrict_val import RestrictValueType
        from brevitas_examples.bnn_pynq.models.common import CommonActQuant, CommonWeightQuant
        from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm

        gen = torch.Generator().manual_seed(seed)
        c_in, h, w = image
        layers = [QuantIdentity(act_quant=CommonActQuant, bit_width=8, min_val=-1.0, max_val=1.0 - 2.0 ** -7,
                                narrow_range=False, restrict_scaling_type=RestrictValueType.POWER_OF_TWO)]
        for c, pool in blocks:
            conv = QuantConv2d(c_in, c, 3, bias=False, weight_quant=CommonWeightQuant, weight_bit_width=1)
            norm = nn.BatchNorm2d(c, eps=1e-4)
            with torch.no_grad():
                conv.weight.copy_(torch.rand(conv.weight.shape, generator=gen) * 2 - 1)
            layers += [conv, norm, QuantIdentity(act_quant=CommonActQuant, bit_width=1)]
            h, w = h - 2, w - 2
            if pool:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c_in = c
        layers.append(nn.Flatten())
        width = c_in * h * w
        for f in fc:
            linear = QuantLinear(width, f, bias=False, weight_quant=CommonWeightQuant, weight_bit_width=1)
            norm = nn.BatchNorm1d(f, eps=1e-4)
            with torch.no_grad():
                linear.weight.copy_(torch.rand(linear.weight.shape, generator=gen) * 2 - 1)
            layers += [linear, norm, QuantIdentity(act_quant=CommonActQuant, bit_width=1)]
            width = f
        last = QuantLinear(width, classes, bias=False, weight_quant=CommonWeightQuant, weight_bit_width=1)
        with torch.no_grad():
            last.weight.copy_(torch.rand(last.weight.shape, generator=gen) * 2 - 1)
        layers += [last, TensorNorm()]
        self.features = nn.Sequential(*layers)
        self.image = image
        q = torch.randint(-128, 128, (256, *image), generator=gen)
        calibrate_norms(self, torch.from_numpy(cnv_raw_to_float(q)), gen)

    def forward(self, x):
        return self.features(2.0 * x - 1.0)


def cnv_raw_to_float(q):
    """The float images whose ``2 x - 1`` is exactly the Q1.7 input q / 128 (q: -128..127 integers)."""
    import numpy as np

    return ((np.asarray(q) / 128 + 1) / 2).astype(np.float32)


def bnn_pynq(name: str, seed: int = 0) -> nn.Module:
    """One of Brevitas's own bnn_pynq models (the FINN examples: tfc_1w1a, sfc_1w1a, lfc_1w1a, cnv_1w1a).

    Untrained (the pretrained weights are a download): seeded random weights, BatchNorms
    calibrated on random inputs (:func:`calibrate_norms`: negative and zero scales, balanced bits).
    """
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    torch.manual_seed(seed)
    model, _ = model_with_cfg(name, pretrained=False)
    gen = torch.Generator().manual_seed(seed)
    model.image = (3, 32, 32) if name.startswith("cnv") else (1, 28, 28)
    if name.startswith("cnv"):  # 8-bit input: floats whose 2x - 1 is exactly q / 128
        x = torch.from_numpy(cnv_raw_to_float(torch.randint(-128, 128, (128, *model.image), generator=gen)))
    else:
        x = torch.randint(0, 256, (256, *model.image), generator=gen).float() / 255
    return calibrate_norms(model, x, gen)
