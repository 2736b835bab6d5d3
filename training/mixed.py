"""`mixed` (paper 001's mixed-training baseline): one network trained from scratch on HR and LR
inputs at once; each sample is degraded with probability ``mixed_ratio``, otherwise kept at HR."""
from __future__ import annotations

import torch

from lowres_sdk.errors import InputError

from .task import Student, Task


class MixedTask(Task):
    def student_input(self, hr: torch.Tensor, generator: torch.Generator, index=None) -> torch.Tensor:
        lr = self.degrade(hr, generator)
        use_lr = (torch.rand(len(hr), generator=generator) < self.recipe.mixed_ratio).view(-1, 1, 1, 1)
        return self.normalize(torch.where(use_lr, lr, hr))


def make_task(recipe, backbone, train_set) -> Task:
    if recipe.input_mode != "upsampled" or recipe.resolution >= recipe.image_size:
        raise InputError("mixed trains one network on HR and LR images of the same input size: it needs "
                         "--input-mode upsampled and --resolution below --image-size")
    if not 0.0 <= recipe.mixed_ratio <= 1.0:
        raise InputError(f"mixed_ratio must be in [0, 1], got {recipe.mixed_ratio}")
    return MixedTask(recipe, Student(backbone))
