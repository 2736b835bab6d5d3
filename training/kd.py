"""`kd`: logit distillation (Hinton et al. 2015). A frozen teacher sees the HR image, the student the
degraded one (or, ``kd_same_view``, both the same degraded crop: Beyer et al. 2022's "consistent"
distillation, for a teacher trained on the degradations itself); the student minimises

    L = (1 - alpha) * CE(z_s, y) + alpha * tau^2 * KL(softmax(z_t / tau) || softmax(z_s / tau))

(tau^2 keeps the soft term's gradients on the scale of the hard one). Unlike DFD's feature loss it
needs no common feature width, so any teacher with the same classes can teach any student.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lowres_sdk.errors import CheckpointError, InputError

from .checkpoint import load_teacher
from .task import Student, Task, TeacherTask


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """tau^2 * KL(softmax(t / tau) || softmax(s / tau)), averaged over the batch."""
    log_p_s = F.log_softmax(student_logits / tau, dim=1)
    log_p_t = F.log_softmax(teacher_logits / tau, dim=1)
    return tau * tau * (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1).mean()


class KDTask(TeacherTask):

    def loss(self, net, hr, y, index, generator):
        x = self.student_input(hr, generator, index)
        logits, _ = net(x)
        with torch.no_grad():
            t = self.teacher(x if self.recipe.kd_same_view else self.teacher_input(hr))
        a = self.recipe.kd_alpha
        return (1 - a) * self.ce(logits, y) + a * kd_loss(logits, t, self.recipe.kd_tau), logits


def make_task(recipe, backbone, train_set) -> Task:
    if not 0.0 <= recipe.kd_alpha <= 1.0 or recipe.kd_tau <= 0:
        raise InputError(f"kd needs 0 <= kd_alpha <= 1 and kd_tau > 0, got {recipe.kd_alpha}, {recipe.kd_tau}")
    teacher, teacher_spec, meta = load_teacher(recipe, "a teacher with the same classes")
    if meta["classes"] != train_set.classes:
        raise CheckpointError(f"teacher {recipe.teacher} was trained on classes {meta['classes']}, the data has {train_set.classes}")
    mine = recipe.spec

    def tensor_format(spec) -> tuple:  # what the network's input tensor is: its side and its normalisation
        return spec.size, tuple(spec.mean), tuple(spec.std)

    if recipe.kd_same_view and tensor_format(teacher_spec) != tensor_format(mine):
        raise InputError(f"kd_same_view: teacher {recipe.teacher} takes {teacher_spec.size} px normalised by mean "
                         f"{teacher_spec.mean} / std {teacher_spec.std}, the student {mine.size} px by {mine.mean} / {mine.std}")
    return KDTask(recipe, Student(backbone), teacher, teacher_spec)
