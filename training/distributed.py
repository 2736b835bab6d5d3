"""Rank and world size of this process: one process normally, DDP over gloo under `torchrun`."""
from __future__ import annotations

import os

import torch.distributed as dist


def world() -> tuple[int, int]:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if not dist.is_initialized():
            dist.init_process_group("gloo")
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
