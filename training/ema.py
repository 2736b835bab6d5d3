"""An exponential moving average of a network's weights, kept beside the trained one."""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Exponential moving average of a module's weights (BN statistics copied): the averaged model
    generalises better than the last iterate at no training cost. The decay ramps up from 0 as
    (1 + n) / (10 + n) so the early, random weights are forgotten quickly."""

    def __init__(self, module: nn.Module, decay: float):
        self.model = copy.deepcopy(module).eval().requires_grad_(False)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for e, v in zip(self.model.state_dict().values(), module.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                e.copy_(v)

    def load(self, state: dict, updates: int) -> None:
        self.model.load_state_dict(state)
        self.updates = updates
