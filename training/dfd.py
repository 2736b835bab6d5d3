"""`dfd`: Deep Feature Distillation (paper 002). A frozen HR teacher; the LR student minimises

    L = CE(head(f_s(LR)), y) + lambda * 1/2 * ||P f_s(LR) - f_t(HR)||^2     (eq. 1-4)

on the pooled features, averaged over the batch. P is a learned linear projection when the widths
differ, identity otherwise. As in the paper the student is fine-tuned from the pre-trained
(teacher) weights when the architectures match.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lowres_sdk.errors import CheckpointError, InputError

from .checkpoint import load_teacher
from .degrade import ModelInput
from .data import to_float
from .options import OptionGroup, option
from .task import Student, Task, TeacherTask


@dataclass
class DFDOptions(OptionGroup):
    feature_weight: float = option(2.0, "weight of the feature loss, lambda (paper 002: 2).", flat="dfd_lambda")
    init_from_teacher: bool = option(True, "start the student from the teacher's weights (the paper's fine-tuning).")
    cache_teacher: bool = option(False, "precompute teacher features once (needs --no-augment).")


def distillation_loss(f_student: torch.Tensor, f_teacher: torch.Tensor) -> torch.Tensor:
    """1/2 ||f_s - f_t||^2 per sample, averaged over the batch."""
    return 0.5 * (f_student - f_teacher).pow(2).sum(dim=1).mean()


class DFDTask(TeacherTask):
    def __init__(self, recipe, student, teacher, teacher_spec, cached=None):
        super().__init__(recipe, student, teacher, teacher_spec)
        self.cached = cached  # [N, D] teacher features of the un-augmented train set, or None

    def loss(self, net, hr, y, index, generator):
        logits, f_s = net(self.student_input(hr, generator, index))
        if self.cached is not None:
            f_t = self.cached[index]
        else:
            with torch.no_grad():
                f_t = self.teacher.forward_features(self.teacher_input(hr))
        return self.ce(logits, y) + self.recipe.options.feature_weight * distillation_loss(f_s, f_t), logits


def make_task(recipe, backbone, train_set) -> Task:
    teacher, teacher_spec, meta = load_teacher(recipe, "a teacher")
    if meta["classes"] != train_set.classes:
        raise CheckpointError(f"teacher {recipe.teacher} was trained on classes {meta['classes']}, the data has "
                              f"{train_set.classes}")
    if teacher_spec.resolution < recipe.image_size:
        raise CheckpointError(f"teacher {recipe.teacher} was trained at {teacher_spec.resolution} px; DFD needs an "
                              f"HR teacher trained at the image size ({recipe.image_size} px), e.g. a "
                              f"'--method highres' run")
    adapter = None
    if teacher.num_features != backbone.num_features:
        adapter = nn.Linear(backbone.num_features, teacher.num_features, bias=False)
    same_arch = (meta["recipe"]["arch"], meta["recipe"]["width"]) == (recipe.arch, recipe.width)
    if recipe.options.init_from_teacher and same_arch:
        backbone.load_state_dict(teacher.state_dict())
    cached = None
    if recipe.options.cache_teacher:
        if recipe.augment:
            raise InputError("cache_teacher needs augment off: augmented views change the teacher's features "
                             "every epoch")
        with torch.no_grad():
            view = ModelInput(teacher_spec)
            cached = torch.cat([teacher.forward_features(view(to_float(train_set.images[i:i + 500])))
                                for i in range(0, len(train_set), 500)])
    return DFDTask(recipe, Student(backbone, adapter), teacher, teacher_spec, cached)
