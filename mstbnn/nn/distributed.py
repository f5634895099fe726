"""Data-parallel training over torch.distributed: ``torchrun --nproc-per-node K -m mstbnn train ...``.

Every rank holds the whole model and trains on 1/K of each global batch;
:class:`~torch.nn.parallel.DistributedDataParallel` averages the gradients
(gloo on CPU, nccl on GPUs). What keeps K ranks equal to one process with the
same global batch, up to the order of float additions:

- The batches: every rank draws the same seeded permutation and takes every
  K-th index of each global batch (DistributedSampler's striding, without its
  padding), so the K shards of a step are exactly the single process's batch.
- The loss: each rank sums its per-sample losses over the global batch size,
  times K (DDP divides the summed gradients by K), so uneven shards of the
  last batch weigh each sample as one process would.
- BatchNorm: :func:`sync_batch_norm` normalises with the statistics of the
  whole global batch (sums all-reduced in forward and backward), on CPU too
  (torch's SyncBatchNorm is GPU-only and would lose the exact eval path of
  :class:`~mstbnn.nn.layers.BatchNorm`).
- The MST trees: built on rank 0 and broadcast, so every rank pulls toward
  the same trees.

Rank 0 alone prints, evaluates the compile-step cost and writes the
checkpoint; metrics (loss, train and test accuracy) are reduced over ranks.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch

from mstbnn.errors import UserError

__all__ = ["Launch", "Dist", "launch_from_env", "resolve_device", "check_batch_size", "init_process_group",
           "sync_batch_norm", "is_comm_failure", "DEFAULT_TIMEOUT"]

# Seconds a rank waits for the others in one collective before giving up.
# Between two collectives rank 0 alone computes the compile-step cost of the
# network and writes the checkpoint; both take seconds even for vgg_small.
DEFAULT_TIMEOUT = 600.0


@dataclass(frozen=True)
class Launch:
    """Where this process sits in the job, read from the launcher's environment."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def leader(self) -> bool:
        """Rank 0: prints, evaluates the network's cost, writes the checkpoint."""
        return self.rank == 0


def _env_int(environ, name: str) -> int | None:
    text = environ.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise UserError(f"environment variable {name}={text!r} is not an integer; launch with "
                        "`torchrun --nproc-per-node K -m mstbnn train ...` or unset it") from None


def launch_from_env(environ=None) -> Launch:
    """The torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK); a single process when WORLD_SIZE is unset."""
    environ = os.environ if environ is None else environ
    world = _env_int(environ, "WORLD_SIZE")
    rank = _env_int(environ, "RANK")
    local = _env_int(environ, "LOCAL_RANK")
    if world is None:
        if rank not in (None, 0):
            raise UserError(f"RANK={rank} is set but WORLD_SIZE is not; launch with torchrun or unset RANK")
        return Launch()
    if world < 1:
        raise UserError(f"WORLD_SIZE={world} must be at least 1")
    rank = 0 if rank is None else rank
    if not 0 <= rank < world:
        raise UserError(f"RANK={rank} is outside 0..{world - 1} (WORLD_SIZE={world})")
    if world > 1:
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not environ.get(k)]
        if missing:
            raise UserError(f"WORLD_SIZE={world} but {' and '.join(missing)} unset; launch with "
                            "`torchrun --nproc-per-node K -m mstbnn train ...`")
    return Launch(rank=rank, world_size=world, local_rank=rank if local is None else local)


def resolve_device(name: str, launch: Launch) -> torch.device:
    """``cpu`` or this rank's GPU (``cuda:LOCAL_RANK``); a missing GPU is one UserError."""
    if name == "cpu":
        return torch.device("cpu")
    if name != "cuda":
        raise UserError(f"--device {name!r}: expected cpu or cuda")
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise UserError(f"--device cuda: no CUDA GPU is visible to torch {torch.__version__} ({build}); "
                        "use --device cpu, or install a CUDA build of torch on a machine with a GPU")
    # Deterministic cuBLAS (torch.use_deterministic_algorithms) needs this before the first matmul.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    count = torch.cuda.device_count()
    if launch.local_rank >= count:
        raise UserError(f"--device cuda: local rank {launch.local_rank} has no GPU (this machine has {count}); "
                        f"launch at most {count} processes per node")
    return torch.device("cuda", launch.local_rank)


def check_batch_size(batch_size: int, launch: Launch) -> None:
    """Every rank takes the same share of a global batch: K must divide it."""
    if batch_size % launch.world_size:
        lo = batch_size - batch_size % launch.world_size
        raise UserError(f"--batch-size {batch_size} (the global batch) is not divisible by the world size "
                        f"{launch.world_size}; use a multiple such as {max(lo, launch.world_size)} or "
                        f"{lo + launch.world_size}")


COMM_FAILURE_MARKERS = ("Connection closed by peer", "Connection reset by peer", "Timed out waiting",
                        "gloo/transport", "NCCL", "Broken pipe")


def is_comm_failure(exc: BaseException) -> bool:
    """Did a collective fail (a peer died or stopped answering) rather than our own code?"""
    if isinstance(exc, torch.distributed.DistError):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in COMM_FAILURE_MARKERS)


class Dist:
    """The process group of one training job and the few collectives training needs."""

    def __init__(self, launch: Launch, device: torch.device, timeout: float):
        self.launch = launch
        self.device = device
        self.timeout = float(timeout)

    @property
    def rank(self) -> int:
        return self.launch.rank

    @property
    def world_size(self) -> int:
        return self.launch.world_size

    @property
    def leader(self) -> bool:
        return self.launch.leader

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks (float64, the same result on every rank)."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return [float(v) for v in t.cpu()]

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank (pickled)."""
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda"
                                                else None)
        return box[0]

    def gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        out = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def init_process_group(launch: Launch, device: torch.device, timeout: float = DEFAULT_TIMEOUT) -> Dist:
    """Join the job: nccl for GPUs, gloo for CPU, ``timeout`` seconds per collective."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        torch.distributed.init_process_group(backend, init_method="env://", rank=launch.rank,
                                             world_size=launch.world_size,
                                             timeout=datetime.timedelta(seconds=timeout))
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"rank {launch.rank} of {launch.world_size}: cannot join the {backend} process group at "
                        f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} "
                        f"({str(exc).splitlines()[0][:200]}); launch with torchrun") from None
    return Dist(launch, device, timeout)


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks, differentiable: the gradient of a sum of every rank's input is the summed gradient.

    (What ``torch.distributed.nn.functional.all_reduce`` does; that one is
    deprecated in torch 2.13.)
    """

    @staticmethod
    def forward(ctx, x):
        out = x.clone()
        torch.distributed.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        torch.distributed.all_reduce(grad)
        return grad


def sync_batch_norm(y: torch.Tensor, norm) -> torch.Tensor:
    """Training-mode BatchNorm over the global batch of all ranks (``norm``: a mstbnn BatchNorm).

    Per channel, the sum and the element count are all-reduced, then the sum
    of squared deviations from the global mean (two passes: no cancellation);
    :class:`_AllReduceSum` carries the gradients back through both sums. Running statistics get the global mean and the
    unbiased global variance, as ``F.batch_norm`` on the whole batch would,
    so they stay identical on every rank.
    """
    all_reduce = _AllReduceSum.apply
    dims = [0] + list(range(2, y.dim()))
    shape = (1, -1) + (1,) * (y.dim() - 2)
    c = y.shape[1]
    count = y.new_full((1,), float(y.numel() // c if c else 0))
    totals = all_reduce(torch.cat([y.sum(dims), count]))
    n = totals[-1]
    mean = totals[:-1] / n
    dev = y - mean.reshape(shape)
    var = all_reduce((dev * dev).sum(dims)) / n
    out = dev * (norm.weight / torch.sqrt(var + norm.eps)).reshape(shape) + norm.bias.reshape(shape)
    with torch.no_grad():
        m = norm.momentum
        unbiased = var * (n / (n - 1)) if float(n) > 1 else var
        norm.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
        norm.running_var.mul_(1 - m).add_(unbiased.detach(), alpha=m)
    return out
