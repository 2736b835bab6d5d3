"""The exported computation as a torch module: raw uint8 BGR NHWC crops of any size -> the model's
own pre-processing (`ModelInput`, the module training used) -> backbone -> softmax or unit embedding.

A classifier's head may be calibrated (``temperature``: softmax(logits / T), fitted on held-out
data) and may merge fine training classes into the labels a deployment needs (``merge``: each
output label sums the probabilities of its fine classes), both inside the graph."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lowres_sdk.spec import InputSpec
from lowres_sdk.training.degrade import ModelInput


class FusedModel(nn.Module):
    def __init__(self, backbone: nn.Module, spec: InputSpec, task: str = "classify", temperature: float = 1.0,
                 merge: list[list[int]] | None = None):
        super().__init__()
        self.backbone, self.spec, self.task = backbone.eval(), spec, task
        self.preprocess = ModelInput(spec)
        self.temperature = float(temperature)
        if merge is None:
            self.merge = None
        else:  # [fine, coarse] 0/1 matrix: coarse probability = sum of its fine ones
            with torch.no_grad():
                fine = backbone.forward_head(torch.zeros(1, backbone.num_features)).shape[1]
            m = torch.zeros(fine, len(merge))
            for j, members in enumerate(merge):
                m[list(members), j] = 1.0
            if not torch.equal(m.sum(1), torch.ones(fine)):
                raise ValueError("merge must put every fine class in exactly one output label")
            self.register_buffer("merge", m, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float() / 255.0  # NHWC uint8 -> NCHW float in [0, 1]
        if self.spec.channel_order == "RGB":
            x = x.flip(1)  # OpenCV gives BGR
        f = self.backbone.forward_features(self.preprocess(x))
        if self.task == "classify":
            logits = self.backbone.forward_head(f)
            if self.temperature != 1.0:
                logits = logits / self.temperature
            probs = F.softmax(logits, dim=1)
            return probs if self.merge is None else probs @ self.merge
        return F.normalize(f, dim=1)
