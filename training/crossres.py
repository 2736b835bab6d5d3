"""`crossres`: cross-resolution fine-tuning (paper 003). Each training image is downsampled with
probability ``crossres_p`` to a random resolution in [``query_min``, ``query_max``] px, then put
through the model's own pre-processing (which resizes it back to the input size), else kept at HR;
the loss is the identity/class softmax, and the embedding is the pooled features.

The paper fine-tunes a pre-trained HR network: pass ``init`` (``--init RUN``), e.g. an ``hr`` run.
"""
from __future__ import annotations

import torch

from lowres_sdk.errors import InputError

from .degrade import ModelInput, resize
from .task import Student, Task


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
        r = self.recipe
        res = sample_resolutions(len(hr), r.crossres_p, r.query_min, r.query_max, generator)
        out = self.model_input(hr)
        for size in res.unique().tolist():
            if size == 0:
                continue
            group = (res == size).nonzero().flatten()  # one resize call per resolution in the batch
            out[group] = self.model_input(resize(hr[group], size, r.down, r.up))
        return out


def make_task(recipe, backbone, train_set) -> Task:
    if not 0.0 <= recipe.crossres_p <= 1.0:
        raise InputError(f"crossres_p must be in [0, 1], got {recipe.crossres_p}")
    if not 1 <= recipe.query_min <= recipe.query_max <= recipe.image_size:
        raise InputError(f"crossres needs 1 <= query_min <= query_max <= image_size, got {recipe.query_min}, "
                         f"{recipe.query_max}, {recipe.image_size}")
    return CrossResTask(recipe, Student(backbone))
