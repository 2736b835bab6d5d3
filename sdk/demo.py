"""Demo input that needs nothing but an installed package: real photos from scikit-image's bundled
samples (the `demo` extra), cut and shrunk to the low-res crops a surveillance camera delivers."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .errors import InputError


@dataclass
class DemoCrop:
    name: str
    expected: str      # what a person sees in it ("" if none of the classes fits)
    image: np.ndarray  # uint8 BGR


def _skimage_data():
    try:
        import skimage.data
    except ImportError:
        raise InputError("the demo needs scikit-image's sample photos: pip install 'lowres_sdk[demo]'") from None
    return skimage.data


def demo_crops(sizes: tuple[int, ...] = (32, 16, 12)) -> list[DemoCrop]:
    """Photos of a person (astronaut; cameraman), a cat and a horse, each as an HR crop shrunk to
    ``sizes`` px on its longer side (INTER_AREA, like a distant object)."""
    data = _skimage_data()
    sources = [
        ("astronaut", "person", data.astronaut()[:, 60:420]),          # RGB, the person's upper body
        ("cameraman", "person", data.camera()[30:330, 110:330]),      # gray, a standing person
        ("chelsea", "cat", data.chelsea()[20:300, 80:360]),          # RGB, a cat's head
        ("horse", "horse", data.horse().astype(np.uint8) * 255),      # binary silhouette
    ]
    crops = []
    for name, expected, img in sources:
        img = np.asarray(img)
        bgr = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        h, w = bgr.shape[:2]
        for s in sizes:
            scale = s / max(h, w)
            small = cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
            crops.append(DemoCrop(f"{name}@{s}px", expected, small))
    return crops
