"""Binary networks: ``mlp``, ``cnn`` and ``vgg_small``, all built from :class:`Stage` s.

A :class:`BinaryNet` is an input quantiser followed by stages. A stage is one
binary layer, then (except for the last stage) BatchNorm and sign, then an
optional 2x2 max-pool on the +-1 activations (= OR on bits). The last stage
has no BatchNorm: its integer sums are the class scores, and training
multiplies them by one positive learned scalar, which never changes the
argmax. Pooled stages pool the integer sums before BN in training mode (see
:meth:`Stage.forward`); eval mode always follows the IR order. This is exactly the shape of the compiler IR, so the export is a
walk over the stages.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mstbnn.nn.layers import BatchNorm, BinaryConv2d, BinaryLinear, InputQuantize, score_scale_init, sign_ste

__all__ = ["Stage", "BinaryNet", "build_model", "MODELS"]

MODELS = ("mlp", "cnn", "vgg_small")


class Stage(nn.Module):
    """One binary layer with its BatchNorm + sign and optional max-pool.

    Parameters
    ----------
    layer : BinaryLinear or BinaryConv2d
    last : bool
        The output stage: no BatchNorm, no sign; returns the integer sums.
    pool : int
        Max-pool kernel (= stride) after the sign, 0 for none.
    """

    def __init__(self, layer: nn.Module, last: bool = False, pool: int = 0):
        super().__init__()
        self.layer = layer
        self.norm = None if last else BatchNorm(layer.out_features if isinstance(layer, BinaryLinear)
                                                else layer.out_channels)
        self.pool = int(pool)

    @property
    def last(self) -> bool:
        return self.norm is None

    def forward(self, x: torch.Tensor, trace: list | None = None) -> torch.Tensor:
        if isinstance(self.layer, BinaryLinear) and x.dim() > 2:
            x = x.flatten(1)  # C-major, as the IR flattens
        y = self.layer(x)
        if trace is not None:
            trace.append(("sums", y))
        if self.norm is None:
            return y
        if self.pool and self.training:
            # Pool the sums, then BN + sign: with a non-negative BN scale
            # (kept so by clamp_bn_scale) this equals OR-pooling the bits, as
            # the IR does and eval mode below computes, but trains far better:
            # OR over 2x2 of +-1 bits saturates toward +1.
            return sign_ste(self.norm(F.max_pool2d(y, self.pool, self.pool)))
        a = sign_ste(self.norm(y))
        if trace is not None:
            trace.append(("bits", a))
        if self.pool:
            a = F.max_pool2d(a, self.pool, self.pool)
            if trace is not None:
                trace.append(("bits", a))
        return a


class BinaryNet(nn.Module):
    """Input quantiser + stages; ``forward`` returns integer class scores (as float).

    Attributes
    ----------
    config : dict
        Everything :func:`build_model` needs to rebuild this network
        (stored in checkpoints).
    """

    def __init__(self, input_quantize: InputQuantize, stages: list[Stage], config: dict):
        super().__init__()
        self.input_quantize = input_quantize
        self.stages = nn.ModuleList(stages)
        self.config = dict(config)
        self.log_score_scale = nn.Parameter(torch.tensor(score_scale_init(stages[-1].layer.fan_in)))

    @torch.no_grad()
    def clamp_bn_scale(self) -> None:
        """Keep BN scales of pooled stages >= 0, so that pool-then-threshold equals threshold-then-OR."""
        for stage in self.stages:
            if stage.pool and stage.norm is not None:
                stage.norm.weight.clamp_(min=0.0)

    def binary_layers(self) -> list[nn.Module]:
        return [s.layer for s in self.stages]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.input_quantize(x)
        for stage in self.stages:
            a = stage(a)
        return a

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Scores times the positive learned scale: what the loss sees."""
        return self(x) * self.log_score_scale.exp()

    @torch.no_grad()
    def trace(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """Eval-mode intermediate results, in IR layer order.

        One entry per IR layer: ``("input", ...)`` then, per stage, the sums,
        the threshold bits (+-1) and the pooled bits where present.
        """
        out = [("input", self.input_quantize(x))]
        a = out[0][1]
        for stage in self.stages:
            a = stage(a, trace=out)
        return out


def _parse_widths(widths, what: str) -> list[int]:
    if isinstance(widths, str):
        widths = [w for w in widths.split(",") if w.strip()]
    out = [int(w) for w in widths]
    if any(w <= 0 for w in out):
        raise ValueError(f"{what} must be positive integers, got {widths!r}")
    return out


def build_model(name: str, input_shape: tuple, n_classes: int, *, hidden=None, channels=None,
                width: float = 1.0, input_mode: str = "threshold", input_threshold: int = 1) -> BinaryNet:
    """Build a binary network.

    Parameters
    ----------
    name : {"mlp", "cnn", "vgg_small"}
    input_shape : tuple of int
        One sample: ``(F,)`` or ``(C, H, W)``; ``mlp`` flattens whatever it gets.
    n_classes : int
    hidden : list of int or "256,256"
        Hidden dense widths (``mlp``; the dense head of ``cnn``).
    channels : list of int or "32,64"
        Conv widths of ``cnn``; each conv is 3x3, pad 1, followed by a 2x2
        max-pool while the feature map is at least 4 wide.
    width : float
        Width multiplier of ``vgg_small`` (1.0 = 128-128-256-256-512-512).
    input_mode : {"threshold", "int"}
        Binarised input, or raw integers into a first layer with binary weights.
    input_threshold : int
        Integer threshold for ``input_mode="threshold"``.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {MODELS}")
    input_shape = tuple(int(s) for s in input_shape)
    config = dict(name=name, input_shape=list(input_shape), n_classes=int(n_classes), input_mode=input_mode,
                  input_threshold=int(input_threshold), width=float(width))
    first_pad = -1.0 if input_mode == "threshold" else 0.0
    stages: list[Stage] = []
    if name == "mlp":
        hidden = _parse_widths(hidden if hidden is not None else [256, 256], "hidden widths")
        config["hidden"] = hidden
        n = 1
        for s in input_shape:
            n *= s
        for h in hidden:
            stages.append(Stage(BinaryLinear(n, h)))
            n = h
        stages.append(Stage(BinaryLinear(n, n_classes), last=True))
    else:
        if len(input_shape) != 3:
            raise ValueError(f"model {name!r} needs (C, H, W) inputs, got shape {input_shape}")
        c, h, w = input_shape
        if name == "cnn":
            convs = _parse_widths(channels if channels is not None else [32, 64], "conv channels")
            hidden = _parse_widths(hidden if hidden is not None else [128], "hidden widths")
            # Pool while the map is still at least 4 wide.
            plan = []
            side = min(h, w)
            for ch in convs:
                pool = side >= 4
                plan.append((ch, pool))
                if pool:
                    side //= 2
        else:
            base = [128, 128, 256, 256, 512, 512]
            convs = [max(1, int(round(b * width))) for b in base]
            hidden = _parse_widths(hidden if hidden is not None else [], "hidden widths")
            plan = [(convs[i], i % 2 == 1) for i in range(6)]
        config["channels"] = convs
        config["hidden"] = hidden
        in_ch = c
        for i, (ch, pool) in enumerate(plan):
            pad_value = first_pad if i == 0 else -1.0
            stages.append(Stage(BinaryConv2d(in_ch, ch, 3, 1, 1, pad_value=pad_value), pool=2 if pool else 0))
            in_ch = ch
            if pool:
                h, w = h // 2, w // 2
                if h < 1 or w < 1:
                    raise ValueError(f"input {input_shape} is too small for the max-pools of {name!r}")
        n = in_ch * h * w
        for hd in hidden:
            stages.append(Stage(BinaryLinear(n, hd)))
            n = hd
        stages.append(Stage(BinaryLinear(n, n_classes), last=True))
    return BinaryNet(InputQuantize(input_shape, input_mode, input_threshold), stages, config)


def model_from_config(config: dict) -> BinaryNet:
    """Rebuild an (untrained) network from :attr:`BinaryNet.config`."""
    return build_model(config["name"], tuple(config["input_shape"]), config["n_classes"],
                       hidden=config.get("hidden"), channels=config.get("channels"),
                       width=config.get("width", 1.0), input_mode=config.get("input_mode", "threshold"),
                       input_threshold=config.get("input_threshold", 1))
