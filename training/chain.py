"""A backbone with stages chained around it, exported as ONE graph: an image stage before it (an
SR net), a feature stage after it (a transfer net, an FSR generator) and a replacement head (an SVM).

`Chained` is itself a `Backbone` (``forward_features`` / ``forward_head``), so the training loop,
evaluation, `FusedModel` and the exporter take it unchanged. Its checkpoint stores each stage as
``{"kind", "args"}`` in ``meta["chain"]``; `build_chain` rebuilds it from that and the backbone.
"""
from __future__ import annotations

import torch
from torch import nn

from lowres_sdk.errors import CheckpointError

from .backbones import Backbone, build_model


class ESPCN(nn.Module):
    """Efficient sub-pixel SR net (Shi et al. 2016): 5x5 conv, 3x3 conv, 3x3 conv to 3*s^2
    channels, pixel shuffle; plus the bicubic upsampling as a skip, so it learns the residual."""

    def __init__(self, scale: int, width: int = 64):
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(nn.Conv2d(3, width, 5, 1, 2), nn.Tanh(),
                                  nn.Conv2d(width, width // 2, 3, 1, 1), nn.Tanh(),
                                  nn.Conv2d(width // 2, 3 * scale * scale, 3, 1, 1), nn.PixelShuffle(scale))
        nn.init.zeros_(self.body[-2].weight)  # starts as plain bicubic
        nn.init.zeros_(self.body[-2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        up = nn.functional.interpolate(x, size=(h * self.scale, w * self.scale), mode="bicubic", align_corners=False)
        return up + self.body(x)


class MLP(nn.Module):
    """Fully connected layers with ReLU between them; ``dims`` = [in, hidden..., out]."""

    def __init__(self, dims: list[int]):
        super().__init__()
        layers = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)
        self.out_features = dims[-1]

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net(f)


# The stage kinds a checkpoint may name (its JSON says which class rebuilds it).
STAGES: dict[str, type[nn.Module]] = {"espcn": ESPCN, "mlp": MLP, "linear": nn.Linear}


def stage(kind: str, **args) -> tuple[nn.Module, dict]:
    """A new stage module and the JSON that rebuilds it."""
    return STAGES[kind](**args), {"kind": kind, "args": args}


class Chained(Backbone):
    """``backbone`` (built by ``build_model(**backbone_args)``) with optional stages, each given
    as the pair `stage` returns."""

    def __init__(self, backbone: Backbone, backbone_args: dict, pre: tuple[nn.Module, dict] | None = None,
                 neck: tuple[nn.Module, dict] | None = None, head: tuple[nn.Module, dict] | None = None):
        super().__init__()
        self.backbone = backbone
        self.spec_json = {"backbone": backbone_args}
        for name, part in (("pre", pre), ("neck", neck), ("head", head)):
            setattr(self, name, part[0] if part else None)
            if part:
                self.spec_json[name] = part[1]
        self.input_size = backbone.input_size
        self.num_features = getattr(self.neck, "out_features", backbone.num_features)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre is not None:
            x = self.pre(x)
        f = self.backbone.forward_features(x)
        return f if self.neck is None else self.neck(f)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_head(f) if self.head is None else self.head(f)


def chain_around(backbone: Backbone, arch: str, width: float, **stages) -> Chained:
    """`Chained` around an existing ``backbone`` of ``arch`` x ``width`` (records how to rebuild it)."""
    args = {"arch": arch, "num_classes": backbone.fc.out_features, "input_size": backbone.input_size, "width": width}
    return Chained(backbone, args, **stages)


def build_chain(spec_json: dict) -> Chained:
    """Rebuild a `Chained` model (weights not loaded) from a checkpoint's ``meta["chain"]``."""
    parts = {}
    for name, s in spec_json.items():
        if name == "backbone":
            continue
        if name not in ("pre", "neck", "head") or s.get("kind") not in STAGES:
            raise CheckpointError(f"unknown chain stage {name}={s!r}; this lowres_sdk knows {', '.join(STAGES)}")
        parts[name] = (STAGES[s["kind"]](**s["args"]), s)
    return Chained(build_model(**spec_json["backbone"]), spec_json["backbone"], **parts)
