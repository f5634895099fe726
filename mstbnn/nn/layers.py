"""Binary layers for training: latent float weights, sign with a clipped straight-through estimator.

Conventions shared with the compiler IR (:mod:`mstbnn.compiler.ir`):

- ``sign(0) = +1``: a latent weight or pre-activation ``>= 0`` is the bit 1.
- Binary activations are padded with -1 (bit 0), the integer input of a
  multi-bit first layer with 0.
- :class:`BatchNorm` computes its eval-mode output with separate element-wise
  operations so that every element is rounded the same way wherever it sits
  in a tensor; the export scans exactly that function to fold it into an
  integer threshold (see :mod:`mstbnn.nn.export`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "sign_ste",
    "binarize",
    "SignActivation",
    "BinaryLinear",
    "BinaryConv2d",
    "BatchNorm",
    "InputQuantize",
]


class _SignSTE(torch.autograd.Function):
    """sign with sign(0) = +1; gradient passed straight through where |x| <= 1."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    """Binarise to +-1 (``x >= 0`` -> +1) with the clipped straight-through gradient."""
    return _SignSTE.apply(x)


def binarize(x: torch.Tensor) -> torch.Tensor:
    """Bits of ``x`` under the same sign convention: ``x >= 0`` -> True."""
    return x >= 0


class SignActivation(nn.Module):
    """Sign activation with STE, as a module."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sign_ste(x)


class BinaryLinear(nn.Module):
    """Fully-connected layer with binary (+-1) weights and no bias.

    Parameters
    ----------
    in_features, out_features : int
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        # Small uniform latents: every sign is free to flip early in training.
        nn.init.uniform_(self.weight, -0.1, 0.1)

    @property
    def fan_in(self) -> int:
        return self.in_features

    def latent_matrix(self) -> torch.Tensor:
        """Latent weights as (C_out, N), the matrix the MST is built over."""
        return self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, sign_ste(self.weight))


class BinaryConv2d(nn.Module):
    """2-D convolution with binary (+-1) weights, no bias, constant padding.

    Parameters
    ----------
    in_channels, out_channels, kernel_size : int
    stride, padding : int
    pad_value : float
        -1 for binary activations (bit 0, as the hardware pads), 0 for the
        integer input of a multi-bit first layer.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, pad_value: float = -1.0):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.pad_value = float(pad_value)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.uniform_(self.weight, -0.1, 0.1)

    @property
    def fan_in(self) -> int:
        return self.in_channels * self.kernel_size * self.kernel_size

    def latent_matrix(self) -> torch.Tensor:
        return self.weight.reshape(self.out_channels, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding:
            p = self.padding
            x = F.pad(x, (p, p, p, p), mode="constant", value=self.pad_value)
        return F.conv2d(x, sign_ste(self.weight), stride=self.stride)


class BatchNorm(nn.Module):
    """Batch normalisation over channel dim 1 of (B, C) or (B, C, H, W).

    Training mode is ``F.batch_norm`` with batch statistics. Eval mode is
    ``(y - mean) * scale + bias`` with ``scale = weight / sqrt(var + eps)``,
    as separate element-wise float32 operations: each element is rounded
    independently of its position, so :meth:`eval_forward` applied to any
    tensor of integers gives exactly what the model computes.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def eval_scale(self) -> torch.Tensor:
        return self.weight / torch.sqrt(self.running_var + self.eps)

    def eval_forward(self, y: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (y.dim() - 2)
        scale = self.eval_scale().reshape(shape)
        return (y - self.running_mean.reshape(shape)) * scale + self.bias.reshape(shape)

    # Set by data-parallel training (mstbnn.nn.distributed): training-mode
    # statistics over the global batch of all ranks instead of this rank's shard.
    sync = False

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.training and self.sync:
            from mstbnn.nn.distributed import sync_batch_norm

            return sync_batch_norm(y, self)
        if self.training:
            return F.batch_norm(y, self.running_mean, self.running_var, self.weight, self.bias,
                                training=True, momentum=self.momentum, eps=self.eps)
        return self.eval_forward(y)


class InputQuantize(nn.Module):
    """First-layer input: raw integers to +-1 by per-feature threshold, or kept as integers.

    Parameters
    ----------
    shape : tuple of int
        Shape of one input sample.
    mode : {"threshold", "int"}
    threshold : int
        The same integer threshold for every feature (``mode="threshold"``):
        bit = x >= threshold.
    """

    def __init__(self, shape: tuple, mode: str = "threshold", threshold: int = 1):
        super().__init__()
        if mode not in ("threshold", "int"):
            raise ValueError(f"unknown input mode {mode!r}")
        self.shape = tuple(shape)
        self.mode = mode
        self.register_buffer("thresholds", torch.full(self.shape, int(threshold), dtype=torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "int":
            return x.to(torch.float32)
        bits = x >= self.thresholds
        return bits.to(torch.float32) * 2 - 1


def score_scale_init(fan_in: int) -> float:
    """log of the initial positive logit scale for integer scores of a fan-in N layer."""
    return math.log(1.0 / math.sqrt(fan_in))
