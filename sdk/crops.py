"""Validation and documented conversions of the crops users hand to the runtime.

Accepted: one HxWx3 array or a list of them (mixed sizes fine), uint8 BGR as OpenCV gives them;
image paths (read with OpenCV) and PIL images (RGB -> BGR) beside them.
Converted, as documented in README "Input rules":
- HxW or HxWx1 gray -> BGR; HxWx4 BGRA -> BGR (alpha dropped); non-contiguous views and ndarray
  subclasses (np.matrix, masked arrays) -> plain contiguous copies;
- float arrays with finite values in [0, 255] -> uint8 (rounded); float arrays whose values all lie
  in [0, 1] are taken as the [0, 1] convention of torch/PIL-float pipelines: scaled by 255, with a
  `FloatRangeWarning` (a [0, 255] image that dark would be black anyway);
- crops longer than `MAX_SIDE` px on a side: shrunk on the host (OpenCV INTER_AREA, aspect kept,
  short side at least 1 px) before the graph sees them -- bounds memory per crop (the graph's
  letterbox pads to a square before resizing: a 1x16384 crop took 3.3 GB).
Refused with InputError: unreadable paths, other dtypes, NaN/inf, 2 or >4 channels, empty arrays, and
arrays that can only be channels-first (CxHxW with C in 1, 3, 4 and a last axis that is not):
when both readings are possible (e.g. 3x20x3) the array is read as HxWxC.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from .errors import InputError

# Image files the CLI and the dataset reader pick up.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp")

# Longest crop side the graph is given. Models here see 8-48 px; 512 px keeps a letterboxed crop's
# float tensors at ~3 MB and leaves every crop up to 512 px untouched (identical to the graph alone).
MAX_SIDE = 512
CHANNELS = (1, 3, 4)


class FloatRangeWarning(UserWarning):
    """A float crop with all values in [0, 1] was scaled by 255."""


def as_crops(crops) -> list[np.ndarray]:
    """A list of contiguous uint8 HxWx3 BGR arrays, or InputError saying what was wrong."""
    if isinstance(crops, np.ndarray) and crops.ndim == 4:
        crops = list(np.asarray(crops))
    elif isinstance(crops, (np.ndarray, str, bytes, os.PathLike)) or _is_pil(crops):
        crops = [crops]
    elif not isinstance(crops, (list, tuple)):
        raise InputError(f"expected an HxWx3 uint8 array, an image path, a PIL image or a list of them, "
                         f"got {type(crops).__name__}")
    if not crops:
        raise InputError("expected at least one crop, got an empty list")
    return [_one(c, i) for i, c in enumerate(crops)]


def read_image(path: str | os.PathLike) -> np.ndarray:
    """The image at ``path`` as uint8 HxWx3 BGR, or InputError saying why it cannot be read."""
    import cv2

    path = os.fsdecode(path)
    if not os.path.isfile(path):
        raise InputError(f"image not found: {path}")
    try:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
    except cv2.error as e:  # e.g. past OpenCV's pixel limit for one image
        raise InputError(f"cannot read image {path}: {str(e).strip().splitlines()[-1][:200]}") from None
    if img is None:
        raise InputError(f"cannot read image {path} (not an image, or corrupt)")
    return img


def _is_pil(crop) -> bool:
    # Duck-typed so that PIL is never imported here: an Image has mode and convert.
    return type(crop).__module__.startswith("PIL.") and hasattr(crop, "convert") and hasattr(crop, "mode")


def _one(crop, i: int) -> np.ndarray:
    where = f"crop {i}"
    if isinstance(crop, (str, bytes, os.PathLike)):
        crop = read_image(crop)
    elif _is_pil(crop):
        crop = np.asarray(crop.convert("RGB"))[:, :, ::-1]
    if not isinstance(crop, np.ndarray):
        raise InputError(f"{where}: expected a numpy array, got {type(crop).__name__}")
    crop = np.asarray(crop)  # np.matrix, masked arrays -> plain ndarray
    if crop.ndim == 2:
        crop = crop[:, :, None]
    if crop.ndim != 3:
        raise InputError(f"{where}: expected HxWx3 (or HxW gray), got shape {crop.shape}")
    h, w, c = crop.shape
    if h == 0 or w == 0 or c == 0:
        raise InputError(f"{where} is empty (shape {crop.shape})")
    if c not in CHANNELS:
        if h in CHANNELS:
            raise InputError(f"{where} has shape {crop.shape}, which looks channels-first (CxHxW); pass HxWxC, "
                             f"e.g. crop.transpose(1, 2, 0)")
        raise InputError(f"{where}: expected 1, 3 or 4 channels (gray, BGR, BGRA), got {c}")
    if crop.dtype != np.uint8:
        if crop.dtype.kind != "f":
            raise InputError(f"{where}: expected uint8 (or float in [0, 255]), got dtype {crop.dtype}")
        if not np.isfinite(crop).all():
            raise InputError(f"{where} contains NaN or infinite values")
        lo, hi = float(crop.min()), float(crop.max())
        if lo < 0 or hi > 255:
            raise InputError(f"{where}: float values must lie in [0, 255] (or [0, 1]), got [{lo:g}, {hi:g}]")
        if hi <= 1.0:
            warnings.warn(f"{where}: float values all in [0, 1]; taken as the [0, 1] convention and scaled "
                          f"by 255 (pass uint8 to avoid the guess)", FloatRangeWarning, stacklevel=4)
            crop = crop.astype(np.float32) * 255
        crop = np.rint(crop).astype(np.uint8)
    if c == 1:
        crop = np.repeat(crop, 3, axis=2)
    elif c == 4:
        crop = crop[:, :, :3]
    return shrink_to(np.ascontiguousarray(crop), MAX_SIDE)


def shrink_to(crop: np.ndarray, max_side: int) -> np.ndarray:
    """``crop`` (uint8 HxWx3) with its long side at most ``max_side`` px (INTER_AREA, aspect kept)."""
    h, w = crop.shape[:2]
    if max(h, w) <= max_side:
        return crop
    import cv2

    scale = max_side / max(h, w)
    size = (max(1, min(max_side, round(w * scale))), max(1, min(max_side, round(h * scale))))
    return np.ascontiguousarray(cv2.resize(crop, size, interpolation=cv2.INTER_AREA))
