"""Label purity of `lowres video` on a clip: the share of reported tracks whose label (the label most
of its reported boxes carry) is the clip's class, over the whole clip and over the tracks first
seen in the part of the clip the default model did not train on (`fixedcam.clip_frames`)."""
from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from lowres_sdk.video.regions import MotionCrops
from lowres_sdk.training.fixedcam import clip_frames
from lowres_sdk.video import process

# clip -> the labels that count as right (the coarse default model's and the fine CIFAR names)
CLIP_CLASSES = {"pedestrians-480x360.avi": {"person"}, "highway-cars-1280x720.mp4": {"car", "truck", "automobile"}}


def purity(track_labels: dict, wanted: set[str]) -> dict:
    n = sum(track_labels.values())
    right = sum(v for k, v in track_labels.items() if k in wanted)
    return {"tracks": n, "label_purity": round(right / n, 3) if n else None,
            "unknown_share": round(track_labels.get("unknown", 0) / n, 3) if n else None,
            "labels": dict(Counter(track_labels).most_common())}


def clip_purity(path: Path, clf, wanted: set[str] | None = None, tracker=None) -> dict:
    """Run the pipeline with its defaults (``tracker``: a `TrackerConfig` instead of the default one)
    over ``path`` (no files written); purity over all reported tracks and over those first seen at
    or after the clip's training split."""
    wanted = wanted or CLIP_CLASSES[path.name]
    split, _ = clip_frames(path)
    born: dict[int, int] = {}
    labels: dict[int, Counter] = defaultdict(Counter)

    def collect(r):
        for d in r.detections:
            born.setdefault(d.track, r.index)
            if d.status == "object":
                labels[d.track][d.label] += 1

    process(path, clf, None, MotionCrops(), callback=collect, progress=False, write_video=False, tracker=tracker)
    majority = {t: c.most_common(1)[0][0] for t, c in labels.items()}
    whole = Counter(majority.values())
    held = Counter(label for t, label in majority.items() if born[t] >= split)
    return {"clip": path.name, **purity(whole, wanted), "held_out": {"from_frame": split, **purity(held, wanted)}}
