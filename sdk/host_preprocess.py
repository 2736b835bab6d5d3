"""The fused graph's first steps done in numpy on the host, for engines that cannot run them:
uint8 BGR crops of any size -> float32 NCHW in [0, 1] at the model's resolution.

TensorRT's ONNX parser rejects the graph's antialiased Resize (onnx-tensorrt docs/operators.md:
"Antialiasing is not supported"), so a TRT-ready graph starts after that Resize and the host
computes it. The resize is the same antialiased triangle filter (PIL / torch
``interpolate(antialias=True)`` / ONNX ``Resize(antialias=1)``), written as one weight matrix per
axis, so the result matches the fused graph to float rounding; OpenCV's INTER_AREA is a different
kernel, and the default model loses ~10 top-1 points when fed it (docs/deployment.md).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .crops import as_crops
from .errors import InputError
from .spec import LETTERBOX_FILL, InputSpec


@lru_cache(maxsize=512)
def antialiased_weights(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] float32 rows of the antialiased bilinear (triangle) filter, half-pixel centres.

    Shrinking widens the triangle to the scale factor (support = scale); enlarging keeps support 1.
    Rows are normalised, so edge pixels are not darkened (ONNX ``exclude_outside=1``)."""
    scale = n_in / n_out
    support, inv = (scale, 1.0 / scale) if scale >= 1.0 else (1.0, 1.0)
    w = np.zeros((n_out, n_in), np.float64)
    for i in range(n_out):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)  # int() truncates toward zero, as torch's kernel does
        hi = min(int(center + support + 0.5), n_in)
        j = np.arange(lo, hi)
        row = np.maximum(0.0, 1.0 - np.abs((j - center + 0.5) * inv))
        w[i, lo:hi] = row / row.sum()
    return w.astype(np.float32)


def letterbox_pads(h: int, w: int) -> tuple[int, int, int, int]:
    side = max(h, w)
    ph, pw = side - h, side - w
    return ph // 2, ph - ph // 2, pw // 2, pw - pw // 2  # top, bottom, left, right (training's split)


def to_resolution(img: np.ndarray, spec: InputSpec) -> np.ndarray:
    """One uint8 HxWx3 image -> float32 [r, r, 3] in 0..255 (r = ``spec.resolution``, channels as
    given): the graph's letterbox (``spec.fit``) and antialiased bilinear resize, as two small matrix
    products. Training's camera input calls it per sample too."""
    h, w = img.shape[:2]
    if spec.fit == "letterbox" and h != w:
        top, bottom, left, right = letterbox_pads(h, w)
        img = np.pad(img, ((top, bottom), (left, right), (0, 0)), constant_values=LETTERBOX_FILL)
        h, w = img.shape[:2]
    r = spec.resolution
    rows = (antialiased_weights(h, r) @ img.reshape(h, w * 3).astype(np.float32)).reshape(r, w, 3)
    return np.matmul(antialiased_weights(w, r), rows)


def prepare(crops, spec: InputSpec) -> np.ndarray:
    """float32 [N, 3, r, r] (r = ``spec.resolution``), channel order of ``spec``, values in [0, 1]:
    what the fused graph holds right after its antialiased resize. Crop order is kept."""
    if spec.down != "bilinear":
        raise InputError(f"host pre-processing implements down='bilinear' (the fused graph's single Resize); "
                         f"this model uses down={spec.down!r}")
    crops = as_crops(crops)
    if not crops:
        return np.empty((0, 3, spec.resolution, spec.resolution), np.float32)
    x = np.stack([to_resolution(c, spec) for c in crops]) * np.float32(1 / 255)  # BGR, NHWC
    if spec.channel_order == "RGB":
        x = x[..., ::-1]
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
