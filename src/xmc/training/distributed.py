"""Data parallelism over several processes with ``torch.distributed`` (``torchrun``): every process
holds the whole model, takes its share of each global batch, and the gradients are averaged across
processes with one all-reduce per step (gloo on CPUs, NCCL on GPUs) before the optimiser steps, so
every process keeps the same weights. This is DistributedDataParallel's arithmetic without its module
wrapper, so every stage of every method (XR-Transformer's levels included) is covered unchanged.

    torchrun --nproc_per_node 2 -m xmc.cli.main train --method lightxml --data EURLEX57K --out m
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --master_port 29500 --nproc_per_node 8 -m xmc.cli.main ...

``train.batch_size`` stays the global batch: each of N processes takes every N-th row of it. The
result then equals one process's with the same batch size, up to floating-point summation order,
for losses that are a mean over equally sized rows (dense heads); shortlist heads average over each
process's own candidates and BatchNorm (InceptionXML) normalises each process's share, which makes
those differ slightly.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """``(rank, world size)`` of this process (``(0, 1)`` outside torchrun)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_main() -> bool:
    return world()[0] == 0


def init(device: torch.device) -> bool:
    """Join the process group torchrun describes; False when running alone."""
    rank, size = world()
    if size <= 1:
        return False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=size)
    return True


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Every gradient replaced by its mean over the processes (sparse ones through a dense buffer)."""
    size = dist.get_world_size()
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        if p.grad.is_sparse:
            dense = p.grad.to_dense()
            dist.all_reduce(dense)
            p.grad = (dense / size).to_sparse()
        else:
            dist.all_reduce(p.grad)
            p.grad.div_(size)


def shard_rows(batch, rank: int, size: int):
    """This process's share of a global batch (``{"rows": ...}``): every ``size``-th row from ``rank``."""
    if size <= 1 or not isinstance(batch, dict) or "rows" not in batch:
        return batch
    return {**batch, "rows": batch["rows"][rank::size]}


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
