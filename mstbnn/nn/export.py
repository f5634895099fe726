"""Export a trained :class:`~mstbnn.nn.models.BinaryNet` to the compiler IR, bit-exact.

BatchNorm + sign fold into a per-channel integer threshold with direction.
Rather than deriving the threshold from a float formula (whose rounding can
disagree with torch's at the boundary), the export evaluates the model's own
eval-mode ``sign(BN(y))`` on every integer ``y`` the layer can produce and
reads off where the bit changes. Float rounding is monotone, so the bits are
a step function of ``y``: rising (direction +1, bit = y >= t), falling
(direction -1, bit = y <= t) or constant (zero scale; encoded as an
always-true / always-false compare at the range's edge). Anything else is an
error, never a silent mismatch.

Checkpoints (``model.pt``) hold the model config and state dict;
:func:`load_checkpoint` rebuilds the model and returns the exported Network.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from mstbnn.artefact import atomic_write
from mstbnn.compiler.ir import BinaryConv2d, BinaryDense, InputQuantizer, MaxPool, Network, Threshold, step_threshold
from mstbnn.errors import UserError
from mstbnn.nn.layers import BatchNorm, BinaryLinear, binarize
from mstbnn.nn.models import BinaryNet, model_from_config

__all__ = ["to_network", "fold_threshold", "save_checkpoint", "load_checkpoint", "load_model", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "mstbnn-model"
CHECKPOINT_VERSION = 1


@torch.no_grad()
def fold_threshold(norm: BatchNorm, y_min: int, y_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer thresholds and directions reproducing ``sign(norm(y)) >= 0`` for every integer y in range.

    Parameters
    ----------
    norm : BatchNorm
        Evaluated with :meth:`BatchNorm.eval_forward`, the model's own eval path.
    y_min, y_max : int
        The layer's reachable integer sums (e.g. -N..N for binary inputs).

    Returns
    -------
    threshold, direction : ndarray of int64, shape (C,)
    """
    ys = torch.arange(y_min, y_max + 1, dtype=torch.float32)
    c = norm.num_features
    bits = binarize(norm.eval_forward(ys[:, None].expand(-1, c).contiguous())).numpy()  # (R, C)
    return step_threshold(bits, y_min, lambda j: f"BatchNorm channel {j}")


def _sum_range(layer, in_range: tuple[int, int] | None) -> tuple[int, int]:
    """Reachable integer sums: -N..N for +-1 inputs; for integer inputs N * max |x|."""
    n = layer.fan_in
    if in_range is None:
        return -n, n
    lo, hi = in_range
    m = max(abs(lo), abs(hi))
    return -n * m, n * m


@torch.no_grad()
def to_network(model: BinaryNet, *, bits: int | None = None, signed: bool | None = None) -> Network:
    """The compiler IR of ``model`` (no schedules: the compile step attaches them).

    Parameters
    ----------
    model : BinaryNet
    bits, signed : input integer range; default from ``model.config`` (set by training).

    Returns
    -------
    Network
        ``meta`` holds the model config and, when present, the training
        settings (``max_depth``, ``negation``) the trees were trained against.
    """
    cfg = model.config
    bits = int(bits if bits is not None else cfg.get("input_bits", 8))
    signed = bool(signed if signed is not None else cfg.get("input_signed", False))
    inq = model.input_quantize
    layers: list = []
    if inq.mode == "threshold":
        layers.append(InputQuantizer(shape=tuple(inq.shape), mode="threshold",
                                     thresholds=inq.thresholds.cpu().numpy().astype(np.int64), bits=bits, signed=signed))
        in_range = None
    else:
        layers.append(InputQuantizer(shape=tuple(inq.shape), mode="int", thresholds=None, bits=bits, signed=signed))
        in_range = layers[0].value_range
        bound = model.stages[0].layer.fan_in * max(abs(v) for v in in_range)
        if bound >= 1 << 24:
            # torch's float32 first layer would not be exact, so neither would the export.
            raise ValueError(f"integer-input first layer: sums up to {bound} exceed float32's exact range (2^24)")
    for stage in model.stages:
        lay = stage.layer
        wbits = binarize(lay.weight.detach()).cpu().numpy().astype(np.uint8)
        if isinstance(lay, BinaryLinear):
            layers.append(BinaryDense(weights=wbits))
        else:
            if in_range is not None and lay.pad_value != 0.0:
                raise ValueError("an integer-input conv must pad with 0")
            layers.append(BinaryConv2d(weights=wbits, stride=lay.stride, padding=lay.padding))
        if stage.norm is not None:
            t, d = fold_threshold(stage.norm, *_sum_range(lay, in_range))
            layers.append(Threshold(threshold=t, direction=d))
        if stage.pool:
            layers.append(MaxPool(kernel=stage.pool, stride=stage.pool))
        in_range = None  # everything after the first layer is +-1
    meta = {"model": dict(cfg)}
    if "train" in cfg:
        meta["train"] = dict(cfg["train"])
    return Network(layers=layers, meta=meta)


def save_checkpoint(model: BinaryNet, path: str | Path, history: list | None = None) -> Path:
    """Write ``model.pt``: format tag, config, state dict and the per-epoch history (atomically)."""
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": model.config,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "history": history or [],
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buf.getvalue())
    return path


def load_model(path: str | Path) -> tuple[BinaryNet, dict]:
    """Rebuild the trained model from a checkpoint; returns (model in eval mode, payload)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model checkpoint {path} not found; train one with `mstbnn train ... -o {path.name}`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means the file is not ours
        raise UserError(f"{path} is not a readable mstbnn model checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not an mstbnn model checkpoint (no '{CHECKPOINT_FORMAT}' format tag)")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise UserError(f"{path}: checkpoint version {payload.get('version')!r} is not supported "
                        f"(this mstbnn reads version {CHECKPOINT_VERSION})")
    try:
        model = model_from_config(payload["config"])
        model.config = dict(payload["config"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise UserError(f"{path}: checkpoint config and weights do not match ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0]})") from None
    for name, tensor in payload["state_dict"].items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise UserError(f"{path}: checkpoint tensor {name} holds NaN or inf; the training diverged, "
                            "retrain (e.g. with a lower --lr)")
    model.eval()
    return model, payload


def load_checkpoint(path: str | Path) -> Network:
    """``model.pt`` -> compiler Network (unscheduled), for ``mstbnn compile model.pt``."""
    model, _ = load_model(path)
    return to_network(model)


def load_test_set(path: str | Path) -> dict | None:
    """The test split of the dataset ``model.pt`` was trained on, as the network's raw inputs.

    Returns ``{"x": inputs, "y": labels}``, or None when the checkpoint does not
    name its dataset or the dataset is no longer where it was.
    """
    from mstbnn.nn.data import load_dataset

    model, payload = load_model(path)
    ds = payload["config"].get("dataset")
    if not ds:
        return None
    try:
        data = load_dataset(ds["name"], ds.get("data_dir"))
    except UserError as exc:
        import sys

        print(f"mstbnn: note: {path} was trained on {ds['name']}, which cannot be read now ({exc}); "
              "the artefact gets no test set", file=sys.stderr)
        return None
    if payload["config"]["name"] != "mlp":
        data = data.as_images()
    return {"x": data.x_test, "y": data.y_test}

