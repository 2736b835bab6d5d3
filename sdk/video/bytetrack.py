"""ByteTrack (Zhang et al. 2022; Roboflow's `trackers` package) behind `IoUTracker`'s interface, so the
pipeline's label evidence, re-classification and reporting rules stay as they are: only which box
continues which track changes. Needs ``pip install trackers``; imported on first use."""
from __future__ import annotations

import numpy as np

from .tracking import IoUTracker, Track, TrackerConfig


class ByteTracker(IoUTracker):
    """Track continuity from ByteTrack's Kalman-predicted, two-stage (high then low confidence)
    association; a box ByteTrack leaves unmatched starts a track of its own here."""

    def __init__(self, config: TrackerConfig | None = None, frame_rate: float = 10.0):
        super().__init__(config)
        import supervision as sv
        from trackers import ByteTrackTracker

        self._sv = sv
        self._byte = ByteTrackTracker(lost_track_buffer=self.config.max_age, frame_rate=frame_rate,
                                      minimum_consecutive_frames=1, track_activation_threshold=0.3)
        self._ours: dict[int, Track] = {}  # ByteTrack id -> our track

    def _associate(self, boxes: np.ndarray, scores, step: int, categories=None) -> dict[int, Track]:
        xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], 1).reshape(-1, 4)
        conf = np.ones(len(boxes)) if scores is None else np.asarray(scores, np.float64).reshape(-1)
        det = self._sv.Detections(xyxy=xyxy, confidence=conf, data={"row": np.arange(len(boxes))})
        result = self._byte.update(det)
        assigned = {}
        for row, tid in zip(result.data["row"].tolist(), result.tracker_id.tolist()):
            if tid < 0:
                continue
            track = self._ours.get(tid)
            if track is None:
                track = self._ours[tid] = Track(self._next, boxes[row], step)
                self.tracks[track.id] = track
                self._next += 1
            assigned[row] = track
        return assigned
