"""Data-parallel training over the processes ``torchrun`` starts (DDP).

``torchrun --nproc_per_node=N -m training.train ...`` starts N copies of the trainer with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set;
``init_from_env`` joins their process group (gloo on CPU, nccl on CUDA, one GPU per local
rank). Without those variables (or with ``WORLD_SIZE=1``) every helper here is a no-op for
one process, so the single-process trainer runs unchanged.

What each rank does per epoch (``training.trainer.Trainer``): the same seeded shuffle of the
training windows on every rank, split DistributedSampler-style (``epoch_batches``: padded to
a multiple of the world size, rank r takes every world-size-th window), so step k of every
rank together covers the single-process run's batch k with the same total batch size; after
each backward pass the gradients are averaged over the ranks in one flat all-reduce
(``average_gradients``), so the replicas stay identical. Rank 0 alone evaluates, checkpoints
and logs; the other ranks wait for its early-stopping decision (``broadcast``).
"""

from __future__ import annotations

import atexit
import math
import os

import torch
import torch.distributed as dist


def init_from_env(device: str = "auto") -> bool:
    """Join torchrun's process group when ``WORLD_SIZE`` > 1 (once per process); whether this
    process is one of several. ``device`` (the training setting: auto | cpu | cuda) picks the
    backend: nccl when training on CUDA, gloo otherwise."""
    if dist.is_available() and dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    atexit.register(_leave)
    return True


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Rank 0 (or the only process): the one that evaluates, checkpoints and tracks."""
    return rank() == 0


def rank_device(device: torch.device) -> torch.device:
    """A CUDA device becomes this process's GPU (``LOCAL_RANK``); CPU stays CPU."""
    if device.type == "cuda" and world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def epoch_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """This rank's batches (indices into the ``n`` training windows) of one epoch.

    ``batch_size`` is the total over all ranks and must be a multiple of the world size. Every
    rank draws the same permutation from ``generator`` (seeded from (seed, epoch)); for
    several ranks it is padded with its own first windows to a multiple of the world size
    (DistributedSampler's ``drop_last=False``), so every rank gets as many windows and steps,
    and rank r's step k holds the r-th, (r + W)-th, ... windows of the single-process batch k.
    With one process the batches are exactly ``iterate_batches``' shuffled ones.
    """
    order = torch.randperm(n, generator=generator)
    size, me = world_size(), rank()
    if size > 1:
        total = math.ceil(n / size) * size
        order = order.repeat(math.ceil(total / n))[:total][me::size]
    per_rank = batch_size // size
    return [order[start : start + per_rank] for start in range(0, len(order), per_rank)]


def average_gradients(parameters: list[torch.nn.Parameter]) -> None:
    """Replace each gradient by its mean over the ranks (one flat all-reduce per step, what
    DDP does in buckets). A parameter without a gradient on every rank keeps none, so the
    optimizer skips it as the single-process run would."""
    if world_size() == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    present = torch.tensor([p.grad is not None for p in parameters], dtype=grads[0].dtype, device=grads[0].device)
    flat = torch.cat([g.reshape(-1) for g in grads] + [present])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for p, g, on_some_rank in zip(parameters, grads, flat[-len(parameters):].tolist()):
        p.grad = flat[offset : offset + g.numel()].view_as(g) if on_some_rank > 0 else None
        offset += g.numel()


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Each value's mean over the ranks (every rank passes the same keys)."""
    if world_size() == 1:
        return values
    names = sorted(values)
    tensor = torch.tensor([values[name] for name in names], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(tensor)
    return {name: float(value) / world_size() for name, value in zip(names, tensor.tolist())}


def broadcast(obj):
    """Rank 0's ``obj`` on every rank (picklable objects: the trainer's state, its decisions)."""
    if world_size() == 1:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0, device=_collective_device())
    return holder[0]


def gather(obj) -> list:
    """Every rank's ``obj``, in rank order, on every rank (e.g. their RNG states for a checkpoint)."""
    if world_size() == 1:
        return [obj]
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Rank 0's weights and buffers on every rank: the replicas start identical."""
    if world_size() == 1:
        return
    for tensor in module.state_dict().values():
        dist.broadcast(tensor, src=0)


def _collective_device() -> torch.device:
    """Where small tensors of a collective live: the GPU for nccl, the CPU for gloo."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
