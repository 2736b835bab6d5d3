"""`crossres`: cross-resolution fine-tuning (paper 003). Each training image is downsampled with
probability ``p`` (``--crossres-p``) to a random resolution in [``query_min``, ``query_max``] px, then put
through the model's own pre-processing (which resizes it back to the input size), else kept at HR;
the loss is the identity/class softmax, and the embedding is the pooled features.

The paper fine-tunes a pre-trained HR network: pass ``init`` (``--init RUN``), e.g. a ``highres`` run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch


from .degrade import ModelInput, resize
from .options import QuerySizes, option
from .task import Student, Task


@dataclass
class CrossResOptions(QuerySizes):
    prefix: ClassVar[str] = "crossres"
    p: float = option(0.5, "probability that a training image is downsampled (paper 003 tries 0.1-1.0).",
                      within=(0.0, 1.0))


def sample_resolutions(n: int, p: float, low: int, high: int, generator: torch.Generator) -> torch.Tensor:
    """Per sample: 0 (keep HR) with probability 1 - p, else a resolution drawn uniformly from [low, high]."""
    degrade = torch.rand(n, generator=generator) < p
    res = torch.randint(low, high + 1, (n,), generator=generator)
    return torch.where(degrade, res, torch.zeros_like(res))


class CrossResTask(Task):
    def __init__(self, recipe, student):
        super().__init__(recipe, student)
        # The deployed graph's input module: an r-px crop is resized to the input size exactly as here.
        self.model_input = ModelInput(recipe.spec)

    def student_input(self, hr: torch.Tensor, generator: torch.Generator, index=None) -> torch.Tensor:
        r, o = self.recipe, self.recipe.options
        res = sample_resolutions(len(hr), o.p, o.query_min, o.query_max, generator)
        out = self.model_input(hr)
        for size in res.unique().tolist():
            if size == 0:
                continue
            group = (res == size).nonzero().flatten()  # one resize call per resolution in the batch
            out[group] = self.model_input(resize(hr[group], size, r.down, r.up))
        return out


def make_task(recipe, backbone, train_set) -> Task:
    recipe.options.check_sizes("crossres", recipe.image_size)
    return CrossResTask(recipe, Student(backbone))
