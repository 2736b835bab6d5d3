"""`staged` (paper 001, "fine-to-coarse" staged training): stage 1 is an HR run (``--teacher``, a
`highres` run); stage 2 fine-tunes the same network on LR inputs with cross-entropy, at the recipe's
(usually lower) learning rate. ``trainable`` picks what stage 2 may change: "all", or parameter
name prefixes such as "fc" or "layers.8,fc"; frozen layers also keep their BN statistics.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from lowres_sdk.errors import CheckpointError, InputError

from .checkpoint import load_teacher
from .options import OptionGroup, option
from .task import Student, Task


@dataclass
class StagedOptions(OptionGroup):
    trainable: str = option("all", "what stage 2 fine-tunes: 'all', or parameter-name prefixes like 'fc' or "
                                   "'layers.8,fc'.")


def freeze(model: nn.Module, trainable: str) -> list[str]:
    """Turn off gradients outside the ``trainable`` prefixes; returns the trainable parameter names."""
    if trainable.strip() == "all":
        return [n for n, _ in model.named_parameters()]
    prefixes = [p.strip() for p in trainable.split(",") if p.strip()]
    names = [n for n, _ in model.named_parameters()]
    unknown = [p for p in prefixes if not any(n == p or n.startswith(p + ".") for n in names)]
    if unknown or not prefixes:
        tops = sorted({n.rsplit(".", 2)[0] for n in names})
        raise InputError(f"--trainable {trainable!r}: no parameters under {unknown or trainable!r}; "
                         f"use 'all' or prefixes such as {', '.join(tops[-3:])}")
    kept = []
    for name, p in model.named_parameters():
        p.requires_grad_(any(name == q or name.startswith(q + ".") for q in prefixes))
        if p.requires_grad:
            kept.append(name)
    return kept


class StagedTask(Task):
    def train(self, mode: bool = True):
        super().train(mode)
        # A module with no trainable parameter of its own is frozen: BN keeps the stage-1 statistics.
        for m in self.student.modules():
            own = list(m.parameters(recurse=False))
            if own and not any(p.requires_grad for p in own):
                m.eval()
        return self


def make_task(recipe, backbone, train_set) -> Task:
    hr_model, hr_spec, meta = load_teacher(recipe, "its stage-1 HR run", role="stage 1")
    if meta["classes"] != train_set.classes:
        raise CheckpointError(f"stage-1 run {recipe.teacher} has classes {meta['classes']}, the data has "
                              f"{train_set.classes}")
    same_net = (meta["recipe"]["arch"], meta["recipe"]["width"]) == (recipe.arch, recipe.width)
    if not same_net or hr_spec.size != recipe.spec.size:
        raise CheckpointError(f"staged fine-tunes the stage-1 network itself: {recipe.teacher} is "
                              f"{meta['recipe']['arch']} x{meta['recipe']['width']} at {hr_spec.size} px, this recipe "
                              f"{recipe.arch} x{recipe.width} at {recipe.spec.size} px")
    backbone.load_state_dict(hr_model.state_dict())
    freeze(backbone, recipe.options.trainable)
    return StagedTask(recipe, Student(backbone))
