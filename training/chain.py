"""A backbone with stages chained around it, exported as ONE graph: an image stage before it (an
SR net), a feature stage after it (a transfer net, an FSR generator) and a replacement head (an SVM).

`Chained` is itself a `Backbone` (``forward_features`` / ``forward_head``), so the training loop,
evaluation, `FusedModel` and the exporter take it unchanged. Its checkpoint stores each stage as
``{"kind", "args"}`` in ``meta["chain"]``; `build_chain` rebuilds it from that and the backbone.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
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


class FSRGenerator(nn.Module):
    """Paper 004's feature generator G (its Table 2) adapted to a ``dim``-d pooled feature: the vector,
    zero-padded to a 1-channel s x s map (s = ceil(sqrt(dim)), 8 x 8 for ResNet-20's 64-d), six 3x3
    convolutions with 4, 8, 16, 32, 64, 128 channels (stride 2 on the 2nd, 4th and 6th, as the table's
    64 -> 32 -> 16 -> 8), dropout, a linear layer back to ``dim``; LeakyReLU(0.2) after every conv.
    The table's 8x8 first kernel on a 64 x 64 map becomes 3x3 on our 8 x 8 map.

    One deviation, for small data: G outputs ``f + body(f)`` with the last layer zero-initialised, so
    it starts as the identity (raw features) and learns the correction towards the HR features.
    """

    def __init__(self, dim: int, dropout: float = 0.3):
        super().__init__()
        self.dim, self.side = dim, math.ceil(math.sqrt(dim))
        layers, cin, side = [], 1, self.side
        for cout, stride in zip((4, 8, 16, 32, 64, 128), (1, 2, 1, 2, 1, 2)):
            layers += [nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2)]
            cin, side = cout, (side - 1) // stride + 1
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin * side * side, dim))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)
        self.out_features = dim

    def as_map(self, f: torch.Tensor) -> torch.Tensor:
        return F.pad(f, (0, self.side * self.side - self.dim)).reshape(-1, 1, self.side, self.side)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return f + self.body(self.as_map(f))


# The stage kinds a checkpoint may name (its JSON says which class rebuilds it).
STAGES: dict[str, type[nn.Module]] = {"espcn": ESPCN, "mlp": MLP, "linear": nn.Linear, "fsr": FSRGenerator}


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
