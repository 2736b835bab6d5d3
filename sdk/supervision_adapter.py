"""Results as `supervision` objects (optional: ``pip install supervision``): a video frame's objects
as ``sv.Detections`` (xyxy, tracker ids), a `Predictions` as ``sv.Classifications``, and the boxes of
anyone's ``sv.Detections`` classified by a `Classifier` (low-res crops named by our model)."""
from __future__ import annotations

import numpy as np

from .results import Predictions


def _sv():
    try:
        import supervision
    except ModuleNotFoundError:
        raise ModuleNotFoundError("the supervision adapter needs supervision: pip install supervision",
                                  name="supervision") from None
    return supervision


def frame_detections(result, reported_only: bool = True):
    """A video `FrameResult`'s boxes as ``sv.Detections``: xyxy, confidence = score, class_id = the
    best class's index, tracker_id = track; ``data`` holds ``class_name`` (the label, "unknown" below
    the threshold), ``known`` and ``status``. ``reported_only``: the reported objects alone."""
    sv = _sv()
    boxes = result.objects if reported_only else result.detections
    if not boxes:
        return sv.Detections.empty()
    return sv.Detections(xyxy=np.array([d.xyxy for d in boxes], dtype=np.float32),
                         confidence=np.array([d.score for d in boxes], dtype=np.float32),
                         class_id=np.array([d.index for d in boxes], dtype=int),
                         tracker_id=np.array([d.track for d in boxes], dtype=int),
                         data={"class_name": np.array([d.label for d in boxes]),
                               "known": np.array([d.label != "unknown" for d in boxes]),
                               "status": np.array([d.status for d in boxes])})


def classifications(pred: Predictions) -> list:
    """One ``sv.Classifications`` per crop: every class id with its probability."""
    sv = _sv()
    ids = np.arange(len(pred.classes))
    return [sv.Classifications(class_id=ids, confidence=row.astype(np.float32)) for row in pred.probs]


def classify_detections(classifier, image: np.ndarray, detections):
    """``detections`` (any detector's ``sv.Detections`` on BGR ``image``) with each box's crop
    classified: class_id, confidence and ``data["class_name"]`` / ``data["known"]`` from ``classifier``
    (boxes are clipped to the image; an empty box keeps class_id -1 and confidence 0)."""
    sv = _sv()
    h, w = image.shape[:2]
    xyxy = np.asarray(detections.xyxy, dtype=float).reshape(-1, 4)
    x0, y0 = np.clip(np.floor(xyxy[:, 0]), 0, w).astype(int), np.clip(np.floor(xyxy[:, 1]), 0, h).astype(int)
    x1, y1 = np.clip(np.ceil(xyxy[:, 2]), 0, w).astype(int), np.clip(np.ceil(xyxy[:, 3]), 0, h).astype(int)
    ok = (x1 > x0) & (y1 > y0)
    pred = classifier([image[b:d, a:c] for a, b, c, d, keep in zip(x0, y0, x1, y1, ok) if keep])
    class_id, confidence = np.full(len(xyxy), -1), np.zeros(len(xyxy), np.float32)
    names, known = np.full(len(xyxy), "", dtype=object), np.zeros(len(xyxy), bool)
    class_id[ok], confidence[ok], known[ok] = pred.indices, pred.scores, pred.known
    names[ok] = pred.labels
    out = sv.Detections(xyxy=xyxy.astype(np.float32), mask=detections.mask, confidence=confidence,
                        class_id=class_id, tracker_id=detections.tracker_id, data=dict(detections.data))
    out.data["class_name"], out.data["known"] = names.astype(str), known
    return out
