"""The region detector's input: a frame shrunk by an integer factor, and beside it the MOG2 foreground
of that shrunk frame as a fourth channel. Training and the runtime build it here, so they agree."""
from __future__ import annotations

import cv2
import numpy as np

MOG2_HISTORY, MOG2_THRESHOLD = 300, 25.0  # the motion stage's defaults (regions.MotionCrops)


class MotionInput:
    """Called once per frame, in order: returns [h, w, 4] uint8 (BGR + foreground 0/255) of the frame
    shrunk ``downscale`` times (INTER_AREA). The foreground needs the frames before it: a fresh
    `MotionInput` per video."""

    def __init__(self, downscale: int = 2):
        self.downscale = int(downscale)
        self.subtractor = cv2.createBackgroundSubtractorMOG2(history=MOG2_HISTORY, varThreshold=MOG2_THRESHOLD,
                                                             detectShadows=False)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        d = self.downscale
        h, w = frame.shape[0] // d, frame.shape[1] // d
        small = frame if d == 1 else cv2.resize(frame[:h * d, :w * d], (w, h), interpolation=cv2.INTER_AREA)
        fg = self.subtractor.apply(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        return np.concatenate([small, fg[..., None]], axis=2)
