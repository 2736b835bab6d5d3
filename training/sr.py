"""`sr` (the SR-first baseline of papers 002/004): a small super-resolution net (ESPCN) in front of
the frozen HR classifier ``--teacher``. The SR net is trained on (LR, HR) pairs of the training
images with a pixel MSE in the classifier's normalised input space; the classifier is untouched.

With ``--input-mode native`` the SR net takes the LR image itself and upscales it by
image_size / resolution (sub-pixel convolution); with ``upsampled`` it refines the bicubic
upsampling at scale 1. Either way the exported graph is LR pre-processing -> SR -> classifier.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from lowres_sdk.errors import CheckpointError

from .chain import chain_around, stage
from .checkpoint import load_teacher
from .degrade import ModelInput
from .options import OptionGroup, option
from .task import Student, Task


@dataclass
class SROptions(OptionGroup):
    prefix: ClassVar[str] = "sr"
    width: int = option(64, "channels of the ESPCN SR net.")


class SRStudent(Student):
    """Forward = (frozen classifier's logits on the SR image, the SR image): the loss needs the
    image, and going through forward keeps DDP's gradient sync."""

    def forward(self, x):
        sr = self.backbone.pre(x)
        with torch.no_grad():
            logits = self.backbone.backbone(sr.contiguous(memory_format=torch.channels_last))
        return logits, sr


class SRTask(Task):
    def __init__(self, recipe, student, hr_spec):
        super().__init__(recipe, student)
        self.hr_input = ModelInput(hr_spec)

    def train(self, mode: bool = True):
        super().train(mode)
        self.student.backbone.backbone.eval()  # the classifier is frozen, BN statistics included
        return self

    def loss(self, net, hr, y, index, generator):
        logits, sr = net(self.student_input(hr, generator))
        with torch.no_grad():
            target = self.hr_input(hr)
        return F.mse_loss(sr, target), logits


def make_task(recipe, backbone, train_set) -> Task:
    classifier, hr_spec, meta = load_teacher(recipe, "the HR classifier it feeds")
    if meta["classes"] != train_set.classes:
        raise CheckpointError(f"teacher {recipe.teacher} has classes {meta['classes']}, the data has "
                              f"{train_set.classes}")
    spec = recipe.spec
    if hr_spec.size % spec.size or (hr_spec.mean, hr_spec.std) != (spec.mean, spec.std):
        raise CheckpointError(f"teacher {recipe.teacher} takes {hr_spec.size} px input, which is not a multiple of "
                              f"this recipe's {spec.size} px input (or normalises differently)")
    classifier.requires_grad_(False)
    model = chain_around(classifier, meta["recipe"]["arch"], meta["recipe"]["width"],
                         pre=stage("espcn", scale=hr_spec.size // spec.size, width=recipe.options.width))
    return SRTask(recipe, SRStudent(model), hr_spec)
