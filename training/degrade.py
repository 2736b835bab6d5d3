"""HR -> LR degradation, as one torch module used by training, evaluation and the exported graph.

Resizing goes through `resize` only, so the pixels a model is trained on are the pixels the
deployed graph computes. Blur / noise / JPEG are optional training-time realism on top.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lowres_sdk.errors import InputError
from lowres_sdk.spec import DOWN_MODES, LETTERBOX_FILL, UP_MODES, InputSpec


def resize(x: torch.Tensor, size: int, down: str = "bilinear", up: str = "bicubic") -> torch.Tensor:
    """Resize NCHW float images in [0, 1] to ``size`` x ``size``.

    Shrinking uses ``down`` with antialiasing ("area" averages pixels, "bilinear" is the
    antialiased triangle filter PIL uses); enlarging uses ``up`` and clamps bicubic overshoot.
    An axis already at ``size`` is left untouched.
    """
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if size <= min(h, w):
        if down == "area":
            return F.adaptive_avg_pool2d(x, size)
        return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    if size >= max(h, w):
        y = F.interpolate(x, size=(size, size), mode=up, align_corners=False)
        return y.clamp(0.0, 1.0) if up == "bicubic" else y
    # One axis shrinks, the other grows: antialiased bilinear handles both directions.
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


class Degrade(nn.Module):
    """Take NCHW float RGB in [0, 1] at any size to ``resolution`` px, then to ``out_size`` px.

    ``out_size`` None keeps the native LR size; ``out_size > resolution`` is the paper's
    "downsample, then upsample back to the model input" setting. Realism (applied in that order):
    Gaussian ``blur_sigma`` before shrinking (optics), additive Gaussian ``noise_std`` and
    ``jpeg_quality`` compression at the LR size (sensor, codec). Random parts draw from the
    ``generator`` passed to ``forward``, so a seeded run is reproducible.
    """

    def __init__(self, resolution: int, out_size: int | None = None, down: str = "bilinear",
                 up: str = "bicubic", blur_sigma: float = 0.0, noise_std: float = 0.0,
                 jpeg_quality: int | None = None):
        super().__init__()
        if resolution < 1:
            raise InputError(f"resolution must be >= 1 px, got {resolution}")
        if out_size is not None and out_size < resolution:
            raise InputError(f"out_size {out_size} is smaller than resolution {resolution}")
        if down not in DOWN_MODES or up not in UP_MODES:
            raise InputError(f"interpolation must be down in {DOWN_MODES}, up in {UP_MODES}; got {down!r}, {up!r}")
        if jpeg_quality is not None and not 1 <= jpeg_quality <= 100:
            raise InputError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
        self.resolution, self.out_size = resolution, out_size
        self.down, self.up = down, up
        self.blur_sigma, self.noise_std, self.jpeg_quality = blur_sigma, noise_std, jpeg_quality
        if blur_sigma > 0:
            self.register_buffer("blur_kernel", _gaussian_kernel(blur_sigma), persistent=False)

    @property
    def is_deterministic(self) -> bool:
        return self.noise_std == 0 and self.jpeg_quality is None

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.blur_sigma > 0:
            x = self._blur(x)
        x = resize(x, self.resolution, self.down, self.up)
        if self.noise_std > 0:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = (x + self.noise_std * noise).clamp_(0.0, 1.0)
        if self.jpeg_quality is not None:
            x = _jpeg(x, self.jpeg_quality)
        if self.out_size is not None:
            x = resize(x, self.out_size, self.down, self.up)
        return x

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        k = self.blur_kernel.to(x.dtype)
        c, r = x.shape[1], k.numel() // 2
        x = F.pad(x, (r, r, r, r), mode="reflect")
        x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)

    def extra_repr(self) -> str:
        return (f"resolution={self.resolution}, out_size={self.out_size}, down={self.down}, up={self.up}, "
                f"blur_sigma={self.blur_sigma}, noise_std={self.noise_std}, jpeg_quality={self.jpeg_quality}")


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    # JPEG is not a tensor op: round-trip each image through OpenCV's codec (training only).
    arr = (x.detach().permute(0, 2, 3, 1).cpu().numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
    out = np.empty_like(arr)
    for i, img in enumerate(arr):
        ok, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        out[i] = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
    return torch.from_numpy(out).to(x.device, x.dtype).permute(0, 3, 1, 2) / 255.0


def letterbox(x: torch.Tensor) -> torch.Tensor:
    """Pad NCHW images to a square with gray, content centred (export-friendly: symbolic sizes)."""
    h, w = x.shape[-2], x.shape[-1]
    side = torch.sym_max(h, w)
    ph, pw = side - h, side - w
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=LETTERBOX_FILL / 255.0)


class Normalize(nn.Module):
    """(x - mean) / std per channel, NCHW."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ModelInput(nn.Module):
    """What a model with ``spec`` does to a [0, 1] RGB crop of any size: resize to its resolution,
    up to its input size, normalise.

    This is the pre-processing the export fuses into the graph; training and evaluation call the
    same module, so parity holds by construction. The first resize must be one graph op for any
    crop size, so with ``down="bilinear"`` it is antialiased bilinear in either direction (the
    antialias only acts when shrinking, which is the op training used on its HR images).
    """

    def __init__(self, spec: InputSpec):
        super().__init__()
        self.spec = spec
        self.normalize = Normalize(spec.mean, spec.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, size = self.spec.resolution, self.spec.size
        if self.spec.fit == "letterbox":
            x = letterbox(x)
        if self.spec.down == "bilinear":
            x = F.interpolate(x, size=(r, r), mode="bilinear", antialias=True, align_corners=False)
        else:
            x = resize(x, r, self.spec.down, self.spec.up)
        if size != r:
            x = resize(x, size, self.spec.down, self.spec.up)
        return self.normalize(x)
