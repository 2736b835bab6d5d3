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
    """Photos of a person (astronaut; cameraman), a cat, a horse and three object-free textures, each
    as an HR crop shrunk to ``sizes`` px on its longer side (INTER_AREA, like a distant object)."""
    data = _skimage_data()
    sources = [
        ("astronaut", "person", data.astronaut()[:, 60:420]),          # RGB, the person's upper body
        ("cameraman", "person", data.camera()[30:330, 110:330]),      # gray, a standing person
        ("chelsea", "cat", data.chelsea()[20:300, 80:360]),          # RGB, a cat's head
        ("horse", "horse", data.horse().astype(np.uint8) * 255),      # binary silhouette
        # No object at all: what a motion detector also hands over (wall, lawn, gravel). A model for
        # fixed cameras must say so (its background label) instead of naming an animal.
        ("brick-wall", "other", data.brick()[:300, :150]),
        ("grass", "other", data.grass()[100:400, 200:350]),
        ("gravel", "other", data.gravel()[:200, :200]),
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


def _sprites(data) -> list[tuple[str, np.ndarray, np.ndarray | None, int]]:
    """(name, BGR image, mask or None, height in px on screen)."""
    astronaut = cv2.cvtColor(data.astronaut()[20:512, 70:400], cv2.COLOR_RGB2BGR)
    cameraman = cv2.cvtColor(data.camera()[40:420, 120:330], cv2.COLOR_GRAY2BGR)
    cat = cv2.cvtColor(data.chelsea()[20:300, 80:360], cv2.COLOR_RGB2BGR)
    horse_mask = ~data.horse()  # True on the horse
    horse = np.full(horse_mask.shape + (3,), (40, 60, 90), np.uint8)  # a brown horse
    return [("person", astronaut, None, 56), ("person", cameraman, None, 48), ("cat", cat, None, 30),
            ("horse", horse, horse_mask, 36)]


def make_demo_clip(path, n_frames: int = 90, size: tuple[int, int] = (320, 240), fps: float = 10.0,
                   seed: int = 0) -> list:
    """Write a short fixed-camera clip (MJPG .avi) in which real photos of two people, a cat and a
    horse cross a textured scene at 30-56 px; returns the true boxes per frame."""
    data = _skimage_data()
    w, h = size
    rng = np.random.default_rng(seed)
    ground = cv2.cvtColor(cv2.resize(data.grass(), size, interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2BGR)
    ground = (ground * np.array([0.55, 0.85, 0.6])).astype(np.uint8)  # green-ish lawn
    sprites = []
    for k, (name, img, mask, height) in enumerate(_sprites(data)):
        scale = height / img.shape[0]
        sw = max(4, round(img.shape[1] * scale))
        small = cv2.resize(img, (sw, height), interpolation=cv2.INTER_AREA)
        m = None if mask is None else cv2.resize(mask.astype(np.uint8), (sw, height),
                                                 interpolation=cv2.INTER_NEAREST) > 0
        y = 20 + k * (h - 80) // 3
        x0, speed = (-sw, 3 + k) if k % 2 == 0 else (w, -(3 + k))
        start = 8 + 10 * k  # after a few empty frames, as a fixed camera sees the scene first
        sprites.append((name, small, m, x0, y, speed, start))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    truth = []
    try:
        for i in range(n_frames):
            frame = np.clip(ground.astype(np.int16) + rng.integers(-4, 5, ground.shape), 0, 255).astype(np.uint8)
            boxes = []
            for name, small, m, x0, y, speed, start in sprites:
                if i < start:
                    continue
                x = x0 + speed * (i - start)
                sh, sw = small.shape[:2]
                xa, xb = max(0, x), min(w, x + sw)
                if xb <= xa:
                    continue
                region = frame[y:y + sh, xa:xb]
                patch = small[:, xa - x:xb - x]
                if m is None:
                    region[:] = patch
                else:
                    region[m[:, xa - x:xb - x]] = patch[m[:, xa - x:xb - x]]
                boxes.append((name, (xa, y, xb - xa, sh)))
            writer.write(frame)
            truth.append(boxes)
    finally:
        writer.release()
    return truth
