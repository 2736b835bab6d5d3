"""Validation and documented conversions of the crops users hand to the runtime.

Accepted: one HxWx3 array or a list of them (mixed sizes fine), uint8 BGR as OpenCV gives them.
Converted, as documented: HxW or HxWx1 gray -> BGR; HxWx4 BGRA -> BGR (alpha dropped); float
arrays with finite values in [0, 255] -> uint8 (rounded); non-contiguous views -> copied.
Refused with InputError: paths/strings, other dtypes, NaN/inf, 2 channels, empty arrays.
"""
from __future__ import annotations

import os

import numpy as np

from .errors import InputError

# Image files the CLI and the dataset reader pick up.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp")


def as_crops(crops) -> list[np.ndarray]:
    """A list of contiguous uint8 HxWx3 BGR arrays, or InputError saying what was wrong."""
    if isinstance(crops, np.ndarray) and crops.ndim == 4:
        crops = list(crops)
    elif isinstance(crops, (np.ndarray, str, os.PathLike)):
        crops = [crops]
    elif not isinstance(crops, (list, tuple)):
        raise InputError(f"expected an HxWx3 uint8 array or a list of them, got {type(crops).__name__}")
    if not crops:
        raise InputError("expected at least one crop, got an empty list")
    return [_one(c, i) for i, c in enumerate(crops)]


def _one(crop, i: int) -> np.ndarray:
    where = f"crop {i}"
    if isinstance(crop, (str, os.PathLike)):
        raise InputError(f"{where} is a path ({crop!s}); pass the image itself, e.g. cv2.imread(path)")
    if not isinstance(crop, np.ndarray):
        raise InputError(f"{where}: expected a numpy array, got {type(crop).__name__}")
    if crop.ndim == 2:
        crop = crop[:, :, None]
    if crop.ndim != 3:
        raise InputError(f"{where}: expected HxWx3 (or HxW gray), got shape {crop.shape}")
    h, w, c = crop.shape
    if h == 0 or w == 0:
        raise InputError(f"{where} is empty (shape {crop.shape})")
    if c not in (1, 3, 4):
        raise InputError(f"{where}: expected 1, 3 or 4 channels (gray, BGR, BGRA), got {c}")
    if crop.dtype != np.uint8:
        if crop.dtype.kind != "f":
            raise InputError(f"{where}: expected uint8 (or float in [0, 255]), got dtype {crop.dtype}")
        if not np.isfinite(crop).all():
            raise InputError(f"{where} contains NaN or infinite values")
        lo, hi = float(crop.min()), float(crop.max())
        if lo < 0 or hi > 255:
            raise InputError(f"{where}: float values must lie in [0, 255], got [{lo:g}, {hi:g}]")
        crop = np.rint(crop).astype(np.uint8)
    if c == 1:
        crop = np.repeat(crop, 3, axis=2)
    elif c == 4:
        crop = crop[:, :, :3]
    return np.ascontiguousarray(crop)
