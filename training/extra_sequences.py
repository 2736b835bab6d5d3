"""Extra annotated fixed-camera sequences (training only, never the scorecard's test set).

Each source is a set of frames plus MOT ground truth held in a public GitHub repository, pinned to one
commit. `build` reads the pinned files out of a fetched snapshot (a bare git directory, read with
`git show COMMIT:PATH`), checks the sha256 of every input, and writes `<name>.mp4` + `<name>.gt.txt` in
the format of `shared/data/sequences/` (`frame,id,x,y,w,h,conf,class,visibility`, frame 1-based, pixels
of the written video, conf 0 = ignore region, ONE class per file: 1 person or 3 car).

Frames are downscaled to at most 1280 px wide (boxes scaled with them) and cut to at most 600 frames.

Usage:  python -m training.extra_sequences OUT_DIR owner/name=GIT_DIR ...   (GIT_DIR: the fetched snapshot)
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

MAX_WIDTH = 1280
MAX_FRAMES = 600
PERSON, CAR = 1, 3

# MOT17 ground-truth classes: 1 pedestrian; 2 person on vehicle, 7 static person, 8 distractor and
# 12 reflection are the benchmark's ignore classes; 3 car; 4-6 bicycle / motorbike / other vehicle;
# 9-11 occluders. A person file keeps 1 (conf 1) and writes 2/7/8/12 as ignore regions (conf 0).
MOT17_TO_PERSON = {1: 1, 2: 0, 7: 0, 8: 0, 12: 0}   # mot class -> conf written (class 1)


@dataclass(frozen=True)
class SequenceSource:
    name: str              # output stem (resolution appended at build time)
    repo: str              # owner/name on GitHub
    commit: str            # pinned commit (40 hex)
    seq_dir: str           # folder holding img1/ and gt/gt.txt (MOT layout)
    frames: int            # frames used (img1/000001.jpg ..)
    fps: float
    cls: int               # class written (PERSON or CAR)
    class_map: Mapping[int, int]  # source class -> conf written (1 keep, 0 ignore region)
    static: bool           # fixed camera?
    licence: str
    origin: str
    sha256: Mapping[str, str]     # path relative to seq_dir -> sha256 of the pinned file


_MOT17_MINI = "assets/MOT17-mini/train"
_YOLO_TRACKING = "mikel-brostrom/yolo_tracking"          # the repository since renamed boxmot
_YOLO_TRACKING_COMMIT = "6e8a541aa403eaec3ac2fe456b1a64d359d741d7"   # last commit holding MOT17-09 too
_MOT17_LICENCE = ("MOT17 frames and ground truth: CC BY-NC-SA 3.0 (MOTChallenge; cite Milan et al. 2016); "
                  "the carrying repository's code is AGPL-3.0")

SOURCES: tuple[SequenceSource, ...] = (
    SequenceSource(
        "mot17-02-mini", _YOLO_TRACKING, _YOLO_TRACKING_COMMIT, f"{_MOT17_MINI}/MOT17-02-FRCNN", 4, 30.0,
        PERSON, MOT17_TO_PERSON, True, _MOT17_LICENCE,
        "MOT17-02 (static camera, pedestrian square), first 4 of 600 frames",
        {
            "gt/gt.txt": "7a0fa89361fa792a3d4654aec0a50de75c41b114d21897b9a6ccda14f22da4e3",
            "img1/000001.jpg": "41ff65408c5338f4a83035fd12e9f5f7b658ee82feacf4512655677032636597",
            "img1/000002.jpg": "9312a3137c9a12524d381d85c693ed39b67374fc1872eb6b1e5a91d66e73e6ea",
            "img1/000003.jpg": "a5c373bede979b5389009136380f39c38cad930dcbc453dd00438154f084b012",
            "img1/000004.jpg": "078c220b50b3a9b94c1a4b9d916b95bdf92aa47f6b249d0988bc091ceb690c80",
        }),
    SequenceSource(
        "mot17-04-mini", _YOLO_TRACKING, _YOLO_TRACKING_COMMIT, f"{_MOT17_MINI}/MOT17-04-FRCNN", 8, 30.0,
        PERSON, MOT17_TO_PERSON, True, _MOT17_LICENCE,
        "MOT17-04 (static elevated camera, pedestrian street at night), first 8 of 1050 frames",
        {
            "gt/gt.txt": "5bed3a5b28ff3df1cd81e73497622ebc5dafa031c6095c86809a2da910b0daba",
            "img1/000001.jpg": "53f3d86aad1aa4912b2919bae344919b54d193e72c1c7169ce8bc4685408053c",
            "img1/000002.jpg": "1c6c088869ef03477a73f4d4cb90de430a456bff028734f6afe69af128a71a8b",
            "img1/000003.jpg": "edc451e430b1f77d2ab5d1b10d5c7fc5f5ab3bee1391391da49b8602fe84d481",
            "img1/000004.jpg": "1f32f99af0396a999f5ee6e28b2c6b7236647fd945ea82df63a3e672d45774b4",
            "img1/000005.jpg": "a98f21491ff16bb92d3da2bb8ac26a02c1516c9843e1171ca7f30239f43af91a",
            "img1/000006.jpg": "2b177ccd455003a70cdad36709c7bcb8dd0cfbb7fa15df937cca7ffbaea3b03f",
            "img1/000007.jpg": "b5d8ce71a6910d8303c24263e6b18f575aafcc38555f70e57b68e3956f6a9cfd",
            "img1/000008.jpg": "7965767d179adbbea6ec3695089f8822c1f86e649ef3c5c1c0347558099d132d",
        }),
    SequenceSource(
        "mot17-09-mini", _YOLO_TRACKING, _YOLO_TRACKING_COMMIT, f"{_MOT17_MINI}/MOT17-09-FRCNN", 4, 30.0,
        PERSON, MOT17_TO_PERSON, True, _MOT17_LICENCE,
        "MOT17-09 (static camera, pedestrian zone), first 4 of 525 frames",
        {
            "gt/gt.txt": "56579b220ae0f524f1315b9a984f6f2800da8aa09604f12c850642bd5dc724ac",
            "img1/000001.jpg": "e4b1c40c44d53489f191e1099156ad57d3963d8c434615750fba0065a8a572af",
            "img1/000002.jpg": "e39497429fbff8cd663e32358a277f49dcca4366f0799da7df5580846ae46a6b",
            "img1/000003.jpg": "43264fc15ef7287d5243dab67181431e213cd79451203828a7ece3d1942deedd",
            "img1/000004.jpg": "7673f2c0f37759fdc3d07a58576d6a07d6f40b7db6cde7dda4f1bd4f7f32d101",
        }),
)


def _read_pinned(git_dir: Path, src: SequenceSource, rel: str) -> bytes:
    path = f"{src.seq_dir}/{rel}"
    data = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{src.commit}:{path}"],
                          check=True, capture_output=True).stdout
    digest = hashlib.sha256(data).hexdigest()
    if digest != src.sha256[rel]:
        raise ValueError(f"{src.repo}@{src.commit[:12]} {path}: sha256 {digest}, pinned {src.sha256[rel]}")
    return data


def _gt_lines(gt: bytes, src: SequenceSource, scale: float) -> list[str]:
    out = []
    for line in gt.decode().splitlines():
        f = line.strip().split(",")
        if len(f) < 8:
            continue
        frame, tid, cls = int(float(f[0])), int(float(f[1])), int(float(f[7]))
        if not 1 <= frame <= min(src.frames, MAX_FRAMES) or cls not in src.class_map:
            continue
        conf = src.class_map[cls]
        if float(f[6]) == 0 and conf:      # the source marks it "not considered": keep it as ignore
            conf = 0
        x, y, w, h = (float(v) * scale for v in f[2:6])
        vis = float(f[8]) if len(f) > 8 else 1.0
        out.append((frame, tid, f"{frame},{tid},{x:.1f},{y:.1f},{w:.1f},{h:.1f},{conf},{src.cls},{vis:g}"))
    return [s for _, _, s in sorted(out)]


def build_one(git_dir: Path, src: SequenceSource, out_dir: Path) -> dict:
    import cv2
    import numpy as np

    for rel in src.sha256:                       # verify every pinned input before writing anything
        _read_pinned(git_dir, src, rel)
    n = min(src.frames, MAX_FRAMES)
    writer = None
    stem = None
    scale = 1.0
    for i in range(1, n + 1):
        img = cv2.imdecode(np.frombuffer(_read_pinned(git_dir, src, f"img1/{i:06d}.jpg"), np.uint8),
                           cv2.IMREAD_COLOR)
        if writer is None:
            h, w = img.shape[:2]
            scale = min(1.0, MAX_WIDTH / w)
            size = (round(w * scale), round(h * scale))
            stem = f"{src.name}-{size[0]}x{size[1]}"
            writer = cv2.VideoWriter(str(out_dir / f"{stem}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), src.fps, size)
        if scale != 1.0:
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        writer.write(img)
    writer.release()
    lines = _gt_lines(_read_pinned(git_dir, src, "gt/gt.txt"), src, scale)
    (out_dir / f"{stem}.gt.txt").write_text("\n".join(lines) + "\n")
    return {"name": stem, "frames": n, "size": size, "class": src.cls,
            "boxes": sum(1 for s in lines if s.split(",")[6] == "1"),
            "ignore": sum(1 for s in lines if s.split(",")[6] == "0")}


def build(mirror_dir_by_repo: Mapping[str, str | Path], out_dir: str | Path) -> list[dict]:
    """Convert every source whose repository has a fetched snapshot in `mirror_dir_by_repo`
    (owner/name -> bare git directory); returns one summary per written sequence."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for src in SOURCES:
        if src.repo in mirror_dir_by_repo:
            done.append(build_one(Path(mirror_dir_by_repo[src.repo]), src, out))
    return done


if __name__ == "__main__":
    mirrors = dict(a.split("=", 1) for a in sys.argv[2:])
    for row in build(mirrors, sys.argv[1]):
        print(row)
