"""Training data of the region detector: annotated fixed-camera sequences (MOT ground truth) turned
into the detector's input (frame + motion channel, `MotionInput`) and CenterNet targets on random,
rescaled patches. A sequence used here is *seen*: the benchmark scores it only with a fold that left
it out (benchmarks/manifests)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lowres_sdk.errors import DataError
from lowres_sdk.video.motion_input import MotionInput
from lowres_sdk.video.scoring import read_mot

CATEGORIES = ("person", "vehicle")
STRIDE = 4  # detector input px per output cell


@dataclass
class Sequence:
    name: str
    category: int                  # index into CATEGORIES
    inputs: np.ndarray             # [frames, h, w, 4] uint8 at the detector's scale
    boxes: list[np.ndarray]        # per frame: [n, 6] x, y, w, h, ignore, category (detector-scale px)


def load_sequence(video: str | Path, gt: str | Path, downscale: int = 2) -> Sequence:
    """Decode ``video`` (every frame, in order: the motion channel needs them) with its ground truth."""
    frames, category = read_mot(gt)
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise DataError(f"cannot open {video}")
    make, inputs = MotionInput(downscale), []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        inputs.append(make(frame))
    cap.release()
    c = CATEGORIES.index(category)
    boxes = [np.array([[*(v / downscale for v in g.box), g.ignore, c] for g in frames.get(i, [])],
                      dtype=np.float32).reshape(-1, 6) for i in range(len(inputs))]
    return Sequence(Path(video).stem, c, np.stack(inputs), boxes)


def _gaussian(heat: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> None:
    """Max-splat an axis-aligned Gaussian peak (1 at the centre cell) onto ``heat``."""
    h, w = heat.shape
    x0, x1 = max(0, int(cx - 3 * sx)), min(w, int(cx + 3 * sx) + 1)
    y0, y1 = max(0, int(cy - 3 * sy)), min(h, int(cy + 3 * sy) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1]
    g = np.exp(-((xs - int(cx)) ** 2 / (2 * sx * sx) + (ys - int(cy)) ** 2 / (2 * sy * sy)))
    np.maximum(heat[y0:y1, x0:x1], g, out=heat[y0:y1, x0:x1])


def targets(boxes: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """CenterNet targets of a ``size`` x ``size`` patch: per-category centre heat maps, log box size
    and sub-cell centre offset at each centre cell, and a weight map that is 0 over ignore regions."""
    n = size // STRIDE
    heat = np.zeros((len(CATEGORIES), n, n), np.float32)
    wh, off = np.zeros((2, n, n), np.float32), np.zeros((2, n, n), np.float32)
    mask, weight = np.zeros((1, n, n), np.float32), np.ones((1, n, n), np.float32)
    for x, y, w, h, ignore, category in boxes:
        cx, cy = (x + w / 2) / STRIDE, (y + h / 2) / STRIDE
        if ignore:
            weight[0, max(0, int(y / STRIDE)):int(math.ceil((y + h) / STRIDE)),
                   max(0, int(x / STRIDE)):int(math.ceil((x + w) / STRIDE))] = 0
            continue
        if not (0 <= cx < n and 0 <= cy < n) or w < 2 or h < 2:
            continue
        _gaussian(heat[int(category)], cx, cy, max(0.5, w / STRIDE / 6), max(0.5, h / STRIDE / 6))
        i, j = int(cy), int(cx)
        wh[:, i, j] = np.log(w), np.log(h)
        off[:, i, j] = cx - j, cy - i
        mask[0, i, j] = 1
    return {"heat": heat, "wh": wh, "off": off, "mask": mask, "weight": weight}


def sample(seq: Sequence, rng: np.random.Generator, size: int, scale_range=(0.5, 3.0),
           people: "PersonBank | None" = None) -> tuple[np.ndarray, dict]:
    """A random ``size`` x ``size`` patch of a random frame of ``seq``: rescaled log-uniformly in
    ``scale_range``, centred near an object most of the time, with people from ``people`` pasted in
    half the time, flipped half the time, with brightness and contrast jitter on the colour channels;
    returns the [4, size, size] uint8 input and its targets."""
    f = int(rng.integers(len(seq.inputs)))
    image, boxes = seq.inputs[f], seq.boxes[f].copy()
    s = math.exp(rng.uniform(*np.log(scale_range)))
    x0, y0 = _window(image.shape[1] * s, image.shape[0] * s, boxes * s, size, rng)
    # only the frame window the patch shows is resized (a whole 1200x720 frame at 3x cost more than the net)
    ix0, iy0 = int(x0 / s), int(y0 / s)
    window = image[iy0:iy0 + int(math.ceil(size / s)) + 2, ix0:ix0 + int(math.ceil(size / s)) + 2]
    window = cv2.resize(window, (max(1, round(window.shape[1] * s)), max(1, round(window.shape[0] * s))),
                        interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    patch = np.zeros((size, size, 4), np.uint8)
    crop = window[:size, :size]
    patch[:crop.shape[0], :crop.shape[1]] = crop
    boxes[:, :4] *= s
    boxes[:, 0] -= ix0 * s
    boxes[:, 1] -= iy0 * s
    if people is not None and rng.random() < 0.5:
        patch, boxes = people.paste(patch, boxes, rng)
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
        boxes[:, 0] = size - boxes[:, 0] - boxes[:, 2]
    color = patch[..., :3].astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-25, 25)
    patch = np.concatenate([np.clip(color, 0, 255).astype(np.uint8), patch[..., 3:]], axis=2)
    return np.ascontiguousarray(patch.transpose(2, 0, 1)), targets(boxes, size)


def _window(w: float, h: float, boxes: np.ndarray, size: int, rng: np.random.Generator) -> tuple[float, float]:
    """Top-left of a ``size`` patch of a ``w`` x ``h`` (scaled) frame: near a random object most of the time."""
    real = boxes[boxes[:, 4] == 0]
    if len(real) and rng.random() < 0.8:
        x, y, bw, bh = real[rng.integers(len(real)), :4]
        cx, cy = x + bw / 2 + rng.uniform(-size / 3, size / 3), y + bh / 2 + rng.uniform(-size / 3, size / 3)
    else:
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    return float(np.clip(cx - size / 2, 0, max(0, w - size))), float(np.clip(cy - size / 2, 0, max(0, h - size)))


class PersonBank:
    """Pedestrian crops to paste into frames at any size: people seen from street level, where the
    annotated sequences have one elevated camera of people. ``extent`` is where the person lies in
    each crop (x, y, w, h as fractions); an elliptical, blurred alpha fades the crop's own background."""

    def __init__(self, crops: list[np.ndarray], extent: list[tuple[float, float, float, float]]):
        if not crops:
            raise DataError("no person crops to paste")
        self.crops, self.extent = crops, extent

    @classmethod
    def from_folders(cls, folders: dict[str | Path, tuple[float, float, float, float]]) -> "PersonBank":
        crops, extent = [], []
        for folder, box in folders.items():
            for path in sorted(Path(folder).rglob("*.jpg")):
                image = cv2.imread(str(path))
                if image is not None:
                    crops.append(image)
                    extent.append(box)
        return cls(crops, extent)

    def paste(self, patch: np.ndarray, boxes: np.ndarray, rng: np.random.Generator,
              heights=(16, 300)) -> tuple[np.ndarray, np.ndarray]:
        """1-3 people pasted at log-uniform heights; moving ones (half) also in the motion channel."""
        patch, added = patch.copy(), []
        for _ in range(int(rng.integers(1, 4))):
            k = int(rng.integers(len(self.crops)))
            crop, (ex, ey, ew, eh) = self.crops[k], self.extent[k]
            person_h = math.exp(rng.uniform(*np.log(heights)))
            scale = person_h / (eh * crop.shape[0])
            ch, cw = max(2, round(crop.shape[0] * scale)), max(2, round(crop.shape[1] * scale))
            if ch >= patch.shape[0] or cw >= patch.shape[1]:
                continue
            crop = cv2.resize(crop, (cw, ch), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            y, x = int(rng.integers(0, patch.shape[0] - ch)), int(rng.integers(0, patch.shape[1] - cw))
            alpha = np.zeros((ch, cw), np.float32)
            cv2.ellipse(alpha, (round((ex + ew / 2) * cw), round((ey + eh / 2) * ch)),
                        (max(1, round(ew * cw * 0.6)), max(1, round(eh * ch * 0.55))), 0, 0, 360, 1.0, -1)
            alpha = cv2.GaussianBlur(alpha, (0, 0), max(0.5, 0.08 * cw))[..., None]
            region = patch[y:y + ch, x:x + cw]
            region[..., :3] = (alpha * crop + (1 - alpha) * region[..., :3]).astype(np.uint8)
            if rng.random() < 0.5:
                moving = (alpha[..., 0] > 0.5) & (rng.random((ch, cw)) > 0.3)  # MOG2's masks are ragged
                region[..., 3] = np.maximum(region[..., 3], moving * 255).astype(np.uint8)
            added.append([x + ex * cw, y + ey * ch, ew * cw, eh * ch, 0, CATEGORIES.index("person")])
        return patch, np.concatenate([boxes, np.array(added, np.float32).reshape(-1, 6)])
