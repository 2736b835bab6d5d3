"""What a method plugs into the loop: `Student` (the trained network: logits + features) and `Task`
(how a batch of augmented HR images becomes a loss). One subclass of `Task` per method file; the
loop never imports a method, the `METHODS` table (methods.py) does."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .backbones import Backbone
from .degrade import Camera, CameraInput, Degrade, ModelInput, Normalize


class Student(nn.Module):
    """The trained network as DDP sees it: one forward returning (logits, features), where
    features pass through ``adapter`` (e.g. DFD's projection to the teacher's width)."""

    def __init__(self, backbone: Backbone, adapter: nn.Module | None = None):
        super().__init__()
        self.backbone = backbone
        self.adapter = adapter if adapter is not None else nn.Identity()

    def forward(self, x):
        # channels_last runs the CPU convolutions ~20 % faster (measured, ResNet-20, 2 threads).
        f = self.backbone.forward_features(x.contiguous(memory_format=torch.channels_last))
        return self.backbone.forward_head(f), self.adapter(f)


class Task(nn.Module):
    """A method = how a batch of augmented HR images becomes a loss. Subclasses live one per file."""

    def __init__(self, recipe, student: Student):  # recipe: a Recipe (not imported: recipe.py reaches the methods)
        super().__init__()
        self.recipe, self.student = recipe, student
        # Training-time degradation (with the optional realism); the deployed graph uses ModelInput.
        out = recipe.image_size if recipe.input_mode == "upsampled" and recipe.resolution < recipe.image_size else None
        self.degrade = Degrade(recipe.resolution, out, recipe.down, recipe.up,
                               recipe.blur_sigma, recipe.noise_std, recipe.jpeg_quality)
        spec = recipe.spec
        self.normalize = Normalize(spec.mean, spec.std)
        self.camera = None
        if recipe.degradation == "camera":
            c = recipe.camera
            self.camera = CameraInput(Camera.scaled(c.realism, min_size=c.min, max_size=c.max, box_jitter=c.box_jitter,
                                                    aspect_range=c.aspect, kernels=c.kernel_list), spec)
        self.aspects: np.ndarray | None = None  # width / height of each training object (camera), set by build_task

    def student_input(self, hr: torch.Tensor, generator: torch.Generator,
                      index: torch.Tensor | None = None) -> torch.Tensor:
        if self.camera is not None:
            aspects = np.ones(len(hr)) if self.aspects is None or index is None else self.aspects[index.numpy()]
            return self.camera(hr, aspects, generator)
        return self.normalize(self.degrade(hr, generator))

    def ce(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y, label_smoothing=self.recipe.label_smoothing)

    def loss(self, net: nn.Module, hr, y, index, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, logits) for a batch; ``net`` is the student, DDP-wrapped when distributed."""
        logits, _ = net(self.student_input(hr, generator, index))
        return self.ce(logits, y), logits


class TeacherTask(Task):
    """A task with a frozen teacher that sees the HR image through its own input pipeline (dfd, kd)."""

    def __init__(self, recipe, student: Student, teacher: Backbone, teacher_spec):
        super().__init__(recipe, student)
        self.teacher = teacher.eval().requires_grad_(False)
        self.teacher_input = ModelInput(teacher_spec)

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # frozen: BN statistics stay the teacher's
        return self
