"""`kd`: logit distillation (Hinton et al. 2015). A frozen teacher sees the HR image, the student the
degraded one (or, ``same_view``, both the same degraded crop: Beyer et al. 2022's "consistent"
distillation, for a teacher trained on the degradations itself); the student minimises

    L = (1 - alpha) * CE(z_s, y) + alpha * tau^2 * KL(softmax(z_t / tau) || softmax(z_s / tau))

(tau^2 keeps the soft term's gradients on the scale of the hard one). Unlike DFD's feature loss it
needs no common feature width, so any teacher with the same classes can teach any student. With
``teachers`` the teacher is an ensemble: softmax(z_t / tau) is the mean of each teacher's. With
``targets`` z_t is read from a file of logits precomputed once per training image (kd_targets.py):
an ensemble's, averaged over views, at no teacher cost per step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lowres_sdk.errors import CheckpointError, InputError

from .checkpoint import load_role, load_teacher
from .degrade import ModelInput
from .kd_targets import load_targets
from .options import OptionGroup, option
from .task import Student, Task, TeacherTask


@dataclass
class KDOptions(OptionGroup):
    prefix: ClassVar[str] = "kd"
    alpha: float = option(0.9, "weight of the distillation term (1 - alpha on the labels).")
    tau: float = option(4.0, "softmax temperature of teacher and student.")
    same_view: bool = option(False, "the teacher sees the student's own degraded crop (consistent views) instead "
                                    "of the HR image; needs a teacher with the student's input size and "
                                    "normalisation.")
    teachers: str = option("", "further teacher runs, comma-separated: an ensemble teacher, whose softened "
                               "outputs (each teacher's at --kd-tau) are averaged with --teacher's.")
    targets: str = option("", "a file of precomputed teacher logits for every training image (`lowres "
                              "kd-targets` makes one from one run or an ensemble), used in place of --teacher.")

    def check(self) -> None:
        if not 0.0 <= self.alpha <= 1.0 or self.tau <= 0:
            raise InputError(f"kd needs 0 <= kd_alpha <= 1 and kd_tau > 0, got {self.alpha}, {self.tau}")


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | Sequence[torch.Tensor],
            tau: float) -> torch.Tensor:
    """tau^2 * KL(p_t || softmax(s / tau)), averaged over the batch, where p_t = softmax(t / tau) or, for
    several teachers' logits, the mean of theirs."""
    teachers = [teacher_logits] if isinstance(teacher_logits, torch.Tensor) else list(teacher_logits)
    log_p_s = F.log_softmax(student_logits / tau, dim=1)
    log_p_teachers = torch.stack([F.log_softmax(t / tau, dim=1) for t in teachers])
    log_p_t = torch.logsumexp(log_p_teachers, dim=0) - math.log(len(teachers))
    return tau * tau * (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1).mean()


def kd_objective(task: Task, logits: torch.Tensor, y: torch.Tensor, teacher_logits) -> torch.Tensor:
    """(1 - alpha) * the task's cross-entropy on the labels + alpha * `kd_loss` at the recipe's tau."""
    a = task.recipe.options.alpha
    return (1 - a) * task.ce(logits, y) + a * kd_loss(logits, teacher_logits, task.recipe.options.tau)


class KDTask(TeacherTask):
    """``extra``: the ensemble's further teachers, each (network, its input spec)."""

    def __init__(self, recipe, student: Student, teacher, teacher_spec, extra=()):
        super().__init__(recipe, student, teacher, teacher_spec)
        self.extra = nn.ModuleList(net.eval().requires_grad_(False) for net, _ in extra)
        self.extra_inputs = nn.ModuleList(ModelInput(spec) for _, spec in extra)

    def train(self, mode: bool = True):
        super().train(mode)
        self.extra.eval()  # frozen, like the first teacher
        return self

    def loss(self, net, hr, y, index, generator):
        x = self.student_input(hr, generator, index)
        logits, _ = net(x)
        same = self.recipe.options.same_view
        teachers = [(self.teacher, self.teacher_input), *zip(self.extra, self.extra_inputs)]
        with torch.no_grad():
            t = [teacher(x if same else view(hr)) for teacher, view in teachers]
        return kd_objective(self, logits, y, t), logits


class TargetsKDTask(Task):
    """KD whose teacher logits are precomputed: row ``index`` of ``targets`` for training image ``index``."""

    def __init__(self, recipe, student: Student, targets: torch.Tensor):
        super().__init__(recipe, student)
        self.targets = targets

    def loss(self, net, hr, y, index, generator):
        logits, _ = net(self.student_input(hr, generator, index))
        return kd_objective(self, logits, y, self.targets[index]), logits


def make_task(recipe, backbone, train_set) -> Task:
    o = recipe.options
    if o.targets:
        if recipe.teacher or o.teachers or o.same_view:
            raise InputError("kd_targets are the teacher's outputs: pass them instead of --teacher / --kd-teachers / "
                             "--kd-same-view")
        return TargetsKDTask(recipe, Student(backbone), load_targets(o.targets, train_set.labels, train_set.classes))
    teacher, teacher_spec, meta = load_teacher(recipe, "a teacher with the same classes")
    extra = []
    for run in (r.strip() for r in o.teachers.split(",") if r.strip()):
        extra.append((run, *load_role(run, "kd_teachers")))
    mine = recipe.spec

    def tensor_format(spec) -> tuple:  # what the network's input tensor is: its side and its normalisation
        return spec.size, tuple(spec.mean), tuple(spec.std)

    for run, _, spec, m in [(recipe.teacher, teacher, teacher_spec, meta), *extra]:
        if m["classes"] != train_set.classes:
            raise CheckpointError(f"teacher {run} was trained on classes {m['classes']}, the data has "
                                  f"{train_set.classes}")
        if o.same_view and tensor_format(spec) != tensor_format(mine):
            raise InputError(f"kd_same_view: teacher {run} takes {spec.size} px normalised by mean "
                             f"{spec.mean} / std {spec.std}, the student {mine.size} px by {mine.mean} / {mine.std}")
    return KDTask(recipe, Student(backbone), teacher, teacher_spec, [(net, spec) for _, net, spec, _ in extra])
