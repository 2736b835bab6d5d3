"""The exported computation as a torch module: raw uint8 BGR NHWC crops of any size -> the model's
own pre-processing (`ModelInput`, the module training used) -> backbone -> softmax or unit embedding.

A classifier's head may be calibrated (``temperature``: softmax(logits / T), fitted on held-out
data) and may merge fine training classes into the labels a deployment needs (``merge``: each
output label sums the probabilities of its fine classes), both inside the graph. ``drop``: fine
classes trained on but left out of the labels (their logits are removed before the softmax, so the
probabilities of the others are renormalized): classes the deployment never sees, whose probability
on its images is mass taken from the classes it does see."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lowres_sdk.spec import InputSpec
from lowres_sdk.training.degrade import ModelInput


class FusedModel(nn.Module):
    def __init__(self, backbone: nn.Module, spec: InputSpec, task: str = "classify", temperature: float = 1.0,
                 merge: list[list[int]] | None = None, drop: Sequence[int] = ()):
        super().__init__()
        self.backbone, self.spec, self.task = backbone.eval(), spec, task
        self.preprocess = ModelInput(spec)
        self.temperature = float(temperature)
        if merge is None:
            if drop:
                raise ValueError("drop needs a merged head (give merge too: the labels the kept classes go to)")
            self.merge = self.keep = None
            return
        with torch.no_grad():
            fine = backbone.forward_head(torch.zeros(1, backbone.num_features)).shape[1]
        named = [c for members in (*merge, drop) for c in members]
        if sorted(named) != list(range(fine)):
            raise ValueError(f"merge and drop must name each of the {fine} fine classes exactly once, got "
                             f"{sorted(named)}")
        keep = [i for i in range(fine) if i not in set(drop)]
        row = {c: k for k, c in enumerate(keep)}
        m = torch.zeros(len(keep), len(merge))  # [kept fine, label] 0/1: a label's probability = sum of its fine ones
        for j, members in enumerate(merge):
            m[[row[c] for c in members], j] = 1.0
        self.register_buffer("merge", m, persistent=False)
        if drop:
            self.register_buffer("keep", torch.tensor(keep), persistent=False)
        else:
            self.keep = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float() / 255.0  # NHWC uint8 -> NCHW float in [0, 1]
        if self.spec.channel_order == "RGB":
            x = x.flip(1)  # OpenCV gives BGR
        f = self.backbone.forward_features(self.preprocess(x))
        if self.task == "classify":
            logits = self.backbone.forward_head(f)
            if self.temperature != 1.0:
                logits = logits / self.temperature
            if self.keep is not None:
                logits = logits.index_select(1, self.keep)
            probs = F.softmax(logits, dim=1)
            return probs if self.merge is None else probs @ self.merge
        return F.normalize(f, dim=1)


def fused_from_head(backbone: nn.Module, spec: InputSpec, task: str, classes: Sequence[str],
                    head: dict | None) -> FusedModel:
    """`FusedModel` for a head given by class names, as `export_run` takes it and a bundle's
    provenance stores it: {"temperature": T, "merge": {label: [fine classes]}, "drop": [fine classes]};
    ValueError when it names classes ``classes`` (the run's, in output order) lacks or does not cover them."""
    head = head or {}
    named = [c for members in (*(head.get("merge") or {}).values(), head.get("drop") or ()) for c in members]
    unknown = sorted(set(named) - set(classes))
    if unknown:
        raise ValueError(f"merge / drop name classes the run does not have: {unknown}")
    index = list(classes).index
    merge = [[index(c) for c in members] for members in head["merge"].values()] if head.get("merge") else None
    drop = [index(c) for c in head.get("drop") or ()]
    return FusedModel(backbone, spec, task, head.get("temperature", 1.0), merge, drop)
