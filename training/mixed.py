"""`mixed` (paper 001's mixed-training baseline): one network trained from scratch on HR and LR
inputs at once; each sample is degraded with probability ``ratio``, otherwise kept at HR."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from lowres_sdk.errors import InputError

from .options import OptionGroup, option
from .task import Student, Task


@dataclass
class MixedOptions(OptionGroup):
    prefix: ClassVar[str] = "mixed"
    ratio: float = option(0.5, "probability that a training image is degraded to --resolution (else kept HR).",
                          within=(0.0, 1.0))


class MixedTask(Task):
    def student_input(self, hr: torch.Tensor, generator: torch.Generator, index=None) -> torch.Tensor:
        lr = self.degrade(hr, generator)
        use_lr = (torch.rand(len(hr), generator=generator) < self.recipe.options.ratio).view(-1, 1, 1, 1)
        return self.normalize(torch.where(use_lr, lr, hr))


def make_task(recipe, backbone, train_set) -> Task:
    if recipe.input_mode != "upsampled" or recipe.resolution >= recipe.image_size:
        raise InputError("mixed trains one network on HR and LR images of the same input size: it needs "
                         "--input-mode upsampled and --resolution below --image-size")
    return MixedTask(recipe, Student(backbone))
