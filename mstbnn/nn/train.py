"""Training loop: Adam on latent weights, cross-entropy, the MST regulariser, per-epoch cost logging.

Deterministic: one seed fixes the initial weights and the batch order;
torch runs single-threaded with deterministic algorithms while training, so
the same seed gives the same checkpoint, bit for bit. With a
:class:`~mstbnn.nn.distributed.Dist` (torchrun), K ranks split every global
batch; see :mod:`mstbnn.nn.distributed` for what stays equal to one process.
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mstbnn.nn.data import Dataset
from mstbnn.nn.layers import BatchNorm
from mstbnn.nn.models import BinaryNet
from mstbnn.nn.regularizer import MSTRegularizer, lambda_at, xnor_layer_weights

__all__ = ["TrainConfig", "train", "evaluate", "predict", "network_stats", "deterministic"]


@dataclass
class TrainConfig:
    """Training settings.

    Attributes
    ----------
    epochs, batch_size, lr : optimiser basics (Adam, cosine decay to 0 over the run).
    seed : int
        Initial weights and batch order.
    mst_lambda : float
        Regulariser strength (0 = plain training).
    mst_every : int
        Rebuild the trees every this many steps; 0 = once per epoch.
    mst_warmup, mst_ramp : int
        Lambda schedule in epochs: 0 during warm-up, then a linear ramp.
    max_depth, negation :
        Tree options, the same ones the compile step should use.
    distance, margin : regulariser distance (see :mod:`mstbnn.nn.regularizer`).
    weighting : {"layer", "xnor"}
        Per-layer penalty factor: 1 / (C * N), or the layer's XNORs per
        inference share (see :func:`mstbnn.nn.regularizer.xnor_layer_weights`).
    cost : {"xnor", "luts"}
        What the trees minimise (as ``mstbnn compile --cost``); recorded so
        the compile step builds the same trees.
    finetune_epochs : int
        Extra epochs at the end with the binary weights frozen (so the trees
        and the XNOR count are final) training only BatchNorm and the score
        scale, at a tenth of ``lr``: the thresholds adapt to the final weights.
    """

    epochs: int = 60
    batch_size: int = 64
    lr: float = 1e-2
    seed: int = 0
    mst_lambda: float = 0.0
    mst_every: int = 0
    mst_warmup: int = 5
    mst_ramp: int = 10
    max_depth: int | None = None
    negation: bool = False
    distance: str = "l1"
    margin: float = 0.05
    finetune_epochs: int = 0
    weighting: str = "xnor"
    cost: str = "xnor"


@contextlib.contextmanager
def deterministic(threads: int = 1, warn_only: bool = False):
    """Single-threaded, deterministic torch for the duration of the block.

    ``warn_only``: a kernel without a deterministic version warns instead of
    raising (on GPUs, where not every CUDA kernel has one).
    """
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=warn_only)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)


def _device(model: BinaryNet) -> torch.device:
    return model.log_score_scale.device


@torch.no_grad()
def predict(model: BinaryNet, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Eval-mode class predictions (argmax of the integer scores, lowest index on ties)."""
    was_training = model.training
    model.eval()
    device = _device(model)
    out = []
    for i in range(0, len(x), batch_size):
        scores = model(torch.as_tensor(x[i: i + batch_size]).to(device))
        out.append(torch.argmax(scores, dim=1).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def evaluate(model: BinaryNet, x: np.ndarray, y: np.ndarray, dist=None) -> float:
    """Eval-mode accuracy in percent; with ``dist`` each rank predicts every K-th sample and the counts are summed."""
    if dist is None:
        return float((predict(model, x) == y).mean() * 100.0)
    part = slice(dist.rank, None, dist.world_size)
    (correct,) = dist.sum([int((predict(model, x[part]) == y[part]).sum())])
    return float(np.float64(correct) / len(y) * 100.0)


def network_stats(model: BinaryNet, *, max_depth: int | None = None, negation: bool = False,
                  cost: str = "xnor") -> dict:
    """Compile-step view of the current weights: XNORs plain / reuse, ratio, storage, height."""
    from mstbnn.compiler.compile import schedule_network
    from mstbnn.compiler.cost import network_cost
    from mstbnn.nn.export import to_network

    if _device(model).type != "cpu":
        model = copy.deepcopy(model).cpu()  # the export folds BatchNorm with CPU tensors
    net = schedule_network(to_network(model), max_depth=max_depth, negation=negation, cost=cost)
    return network_cost(net)


class _Logits(torch.nn.Module):
    """What DistributedDataParallel wraps: its forward is the loss's input, ``model.logits``."""

    def __init__(self, model: BinaryNet):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.logits(x)


def _data_parallel(model: BinaryNet, dist):
    """DDP over the parameters that currently train (rebuilt when the fine-tune freezes the binary weights)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [dist.device] if dist.device.type == "cuda" else None
    # Buffers (BN running statistics) are equal on every rank already: sync_batch_norm
    # updates them from the all-reduced statistics.
    return DistributedDataParallel(_Logits(model), device_ids=ids, forward_sync_buffers=False)


def train(model: BinaryNet, data: Dataset, config: TrainConfig, *, progress: bool = False,
          log=None, dist=None, device=None) -> list[dict]:
    """Train ``model`` in place; return the per-epoch history.

    Each history entry: epoch, lambda, loss, penalty, train_acc, test_acc,
    mst_weight (total over layers), xnor_plain, xnor_reuse, xnor_ratio,
    storage_ratio, max_height (trees as the compile step builds them).

    ``log`` (callable taking a str) receives one line per epoch.

    ``dist`` (:class:`mstbnn.nn.distributed.Dist`): train as one of K ranks
    on its device; ``config.batch_size`` is the global batch (K must divide
    it). Only rank 0 logs and gets the history (other ranks get ``[]``).
    ``device``: where a single process trains (default CPU).
    The model is back on the CPU, in eval mode, when this returns.
    """
    world = dist.world_size if dist is not None else 1
    rank = dist.rank if dist is not None else 0
    leader = rank == 0
    device = dist.device if dist is not None else torch.device(device or "cpu")
    if config.batch_size % world:
        raise ValueError(f"batch size {config.batch_size} is not divisible by the world size {world}")
    model.config["input_bits"] = int(data.bits)
    model.config["input_signed"] = bool(data.signed)
    model.config["train"] = {"max_depth": config.max_depth, "negation": bool(config.negation),
                             "mst_lambda": float(config.mst_lambda), "seed": int(config.seed),
                             "world_size": int(world)}
    if config.cost != "xnor":  # absent for xnor: checkpoints stay as before
        model.config["train"]["cost"] = config.cost
    history: list[dict] = []
    if not leader:
        log, progress = None, False
    with deterministic(warn_only=device.type != "cpu"):
        torch.manual_seed(config.seed)
        gen = torch.Generator().manual_seed(config.seed)
        # Re-initialise from the seed so the result depends on the seed alone.
        for p_name, p in model.named_parameters():
            if p_name.endswith("layer.weight"):
                torch.nn.init.uniform_(p, -0.1, 0.1, generator=gen)
        x_train = torch.as_tensor(data.x_train)
        y_train = torch.as_tensor(data.y_train)
        n = len(x_train)
        steps_per_epoch = max(1, math.ceil(n / config.batch_size))
        total_steps = steps_per_epoch * config.epochs
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / max(1, total_steps))))
        layer_weights = None
        if config.weighting == "xnor":
            from mstbnn.compiler.cost import layer_costs
            from mstbnn.nn.export import to_network

            costs = layer_costs(to_network(model))
            layer_weights = xnor_layer_weights([c.evaluations for c in costs],
                                               [c.out_channels * c.fan_in for c in costs])
        elif config.weighting != "layer":
            raise ValueError(f"unknown weighting {config.weighting!r}; expected 'xnor' or 'layer'")
        from mstbnn.compiler.compile import layer_leaf
        from mstbnn.nn.export import to_network

        first = to_network(model)
        leaves = [layer_leaf(first, i) for i, _ in first.binary_layers()]
        model.to(device)
        forward = model.logits
        if dist is not None:
            for m in model.modules():
                if isinstance(m, BatchNorm):
                    m.sync = True
            forward = _data_parallel(model, dist)
        reg = MSTRegularizer(model.binary_layers(), max_depth=config.max_depth, negation=config.negation,
                             distance=config.distance, margin=config.margin, layer_weights=layer_weights,
                             cost=config.cost, leaves=leaves)
        every = config.mst_every if config.mst_every > 0 else steps_per_epoch
        latents = [layer.weight for layer in model.binary_layers()]
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=config.epochs + config.finetune_epochs, unit="epoch", desc="train", leave=False,
                       dynamic_ncols=True)
        step = 0
        n_epochs = config.epochs + config.finetune_epochs
        for epoch in range(n_epochs):
            finetune = epoch >= config.epochs
            if finetune and epoch == config.epochs:
                for w in latents:
                    w.requires_grad_(False)
                opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr * 0.1)
                sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
                if dist is not None:
                    forward = _data_parallel(model, dist)
            lam = 0.0 if finetune else lambda_at(epoch, config.mst_lambda, config.mst_warmup, config.mst_ramp)
            model.train()
            perm = torch.randperm(n, generator=gen)
            loss_sum = pen_sum = 0.0
            correct = 0
            for b in range(steps_per_epoch):
                idx = perm[b * config.batch_size: (b + 1) * config.batch_size]
                # DistributedSampler's striding within the global batch: the K shards are exactly it.
                mine = idx[rank::world] if world > 1 else idx
                xb, yb = x_train[mine].to(device), y_train[mine].to(device)
                logits = forward(xb)
                if dist is None:
                    loss = F.cross_entropy(logits, yb)
                    sample_loss_sum = float(loss.detach()) * len(idx)
                else:
                    # Sum over this shard / global batch size, times K against DDP's average
                    # over ranks: the gradient of the global batch's mean loss.
                    shard_sum = F.cross_entropy(logits, yb, reduction="sum")
                    loss = shard_sum * (world / len(idx))
                    sample_loss_sum = float(shard_sum.detach())
                total = loss
                if lam > 0:
                    if step % every == 0 or not reg.built:
                        if dist is None:
                            reg.rebuild()
                        else:  # rank 0's trees on every rank
                            reg.set_schedules(dist.broadcast(reg.build_schedules() if leader else None))
                    pen = reg.penalty()
                    total = loss + lam * pen
                    pen_sum += float(pen.detach()) * len(idx)
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
                sched.step()
                with torch.no_grad():
                    for w in latents:
                        w.clamp_(-1.0, 1.0)
                model.clamp_bn_scale()
                loss_sum += sample_loss_sum
                correct += int((logits.argmax(1) == yb).sum())
                step += 1
            if dist is not None:
                loss_sum, correct = dist.sum([loss_sum, correct])
            test_acc = evaluate(model, data.x_test, data.y_test, dist)
            if not leader:
                continue
            stats = network_stats(model, max_depth=config.max_depth, negation=config.negation, cost=config.cost)
            entry = {
                "epoch": epoch + 1,
                "lambda": lam,
                "loss": loss_sum / n,
                "penalty": pen_sum / n,
                "train_acc": 100.0 * correct / n,
                "test_acc": test_acc,
                "mst_weight": int(sum(l["mst_weight"] for l in stats["layers"])),
                "xnor_plain": stats["xnor_plain"],
                "xnor_reuse": stats["xnor_reuse"],
                "xnor_ratio": stats["xnor_ratio"],
                "storage_ratio": stats["storage_ratio"],
                "max_height": stats["max_height"],
            }
            history.append(entry)
            tag = " (fine-tune)" if finetune else ""
            line = (f"epoch {epoch + 1}/{n_epochs}{tag}  lambda {lam:.3g}  loss {entry['loss']:.4f}  "
                    f"train {entry['train_acc']:.2f}%  test {entry['test_acc']:.2f}%  "
                    f"MST distance {entry['mst_weight']}  reduction {entry['xnor_ratio']:.2f}x  "
                    f"height {entry['max_height']}")
            if bar is not None:
                bar.set_postfix_str(f"test {entry['test_acc']:.1f}% red {entry['xnor_ratio']:.1f}x")
                bar.update(1)
            if log is not None:
                if bar is not None:
                    bar.write(line)
                else:
                    log(line)
        if bar is not None:
            bar.close()
        for w in latents:
            w.requires_grad_(True)
        for m in model.modules():
            if isinstance(m, BatchNorm):
                m.sync = False
    model.cpu()
    model.eval()
    return history

