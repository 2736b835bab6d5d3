"""The exported computation as a torch module: raw uint8 BGR NHWC crops of any size -> the model's
own pre-processing (`ModelInput`, the module training used) -> backbone -> softmax or unit embedding."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lowres_sdk.spec import InputSpec
from lowres_sdk.training.degrade import ModelInput


class FusedModel(nn.Module):
    def __init__(self, backbone: nn.Module, spec: InputSpec, task: str = "classify"):
        super().__init__()
        self.backbone, self.spec, self.task = backbone.eval(), spec, task
        self.preprocess = ModelInput(spec)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float() / 255.0  # NHWC uint8 -> NCHW float in [0, 1]
        if self.spec.channel_order == "RGB":
            x = x.flip(1)  # OpenCV gives BGR
        f = self.backbone.forward_features(self.preprocess(x))
        if self.task == "classify":
            return F.softmax(self.backbone.forward_head(f), dim=1)
        return F.normalize(f, dim=1)
