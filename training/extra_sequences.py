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
    seq_dir: str           # folder holding img1/NNNNNN.jpg and gt/gt.txt (MOT layout)
    frames: int            # frames used (img1/000001.jpg ..)
    fps: float
    cls: int               # class written (PERSON or CAR)
    class_map: Mapping[int, int]  # source class -> conf written (1 keep, 0 ignore region); others dropped
    static: bool           # fixed camera?
    licence: str
    origin: str
    gt_sha256: str         # sha256 of gt/gt.txt
    frames_sha256: str     # sha256 of the `sha256sum` listing ("<sha256>  img1/000001.jpg\n" ..) of the frames


_MOT_LICENCE = ("CC BY-NC-SA 3.0 (MOTChallenge frames and ground truth; cite Leal-Taixe et al. 2015 / "
                "Milan et al. 2016); the carrying repository's own code licence does not cover them")
_YOLO_TRACKING = "mikel-brostrom/yolo_tracking"          # the repository since renamed boxmot
_YOLO_TRACKING_COMMIT = "6e8a541aa403eaec3ac2fe456b1a64d359d741d7"
_MOT17_MINI = "assets/MOT17-mini/train"

SOURCES: tuple[SequenceSource, ...] = (
    # MOT15 ADL-Rundle-6, whole: static camera at a shopping-street entrance (Rundle Mall). MOT17-09 is
    # the same 525 frames with re-done ground truth, so it is not listed separately.
    SequenceSource(
        "adl-rundle-6", "raphrb2/VisualObjectTracking", "fe769c87cd48ef402ba90d895223246fc91879e5",
        "ADL-Rundle-6", 525, 30.0, PERSON, {-1: 1}, True, _MOT_LICENCE,
        "MOT15 ADL-Rundle-6 (= MOT17-09's video), all 525 frames, MOT15 ground truth (pedestrians)",
        "94ffe227d2dfeb87e03063bb532439b83e637d19bef533ab44d6131217319108",
        "8c1d108e65d89646bdf0df42079b926e1b8affe11f348a59617c30e6834ca722"),
    SequenceSource(
        "mot17-02-mini", _YOLO_TRACKING, _YOLO_TRACKING_COMMIT, f"{_MOT17_MINI}/MOT17-02-FRCNN", 4, 30.0,
        PERSON, MOT17_TO_PERSON, True, _MOT_LICENCE,
        "MOT17-02 (static camera, pedestrian square), first 4 of 600 frames",
        "7a0fa89361fa792a3d4654aec0a50de75c41b114d21897b9a6ccda14f22da4e3",
        "20f6a987f724e05c12114de199c7c6ba5723a8582aa9dd739badb209323d44ce"),
    SequenceSource(
        "mot17-04-mini", _YOLO_TRACKING, _YOLO_TRACKING_COMMIT, f"{_MOT17_MINI}/MOT17-04-FRCNN", 8, 30.0,
        PERSON, MOT17_TO_PERSON, True, _MOT_LICENCE,
        "MOT17-04 (static elevated camera, pedestrian street at night), first 8 of 1050 frames",
        "5bed3a5b28ff3df1cd81e73497622ebc5dafa031c6095c86809a2da910b0daba",
        "0347194369e1961a087795ab01ae8a8b9faab1c14654723761ccb05ec38511ef"),
)


def _git_show(git_dir: Path, commit: str, path: str) -> bytes:
    return subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"],
                          check=True, capture_output=True).stdout


def read_inputs(git_dir: Path, src: SequenceSource) -> tuple[bytes, list[bytes]]:
    """The pinned gt and frames of `src`, after checking their sha256 (ValueError on any mismatch)."""
    where = f"{src.repo}@{src.commit[:12]} {src.seq_dir}"
    gt = _git_show(git_dir, src.commit, f"{src.seq_dir}/gt/gt.txt")
    if hashlib.sha256(gt).hexdigest() != src.gt_sha256:
        raise ValueError(f"{where}/gt/gt.txt: sha256 {hashlib.sha256(gt).hexdigest()}, pinned {src.gt_sha256}")
    names = [f"img1/{i:06d}.jpg" for i in range(1, src.frames + 1)]
    frames = [_git_show(git_dir, src.commit, f"{src.seq_dir}/{n}") for n in names]
    listing = "".join(f"{hashlib.sha256(b).hexdigest()}  {n}\n" for n, b in zip(names, frames))
    digest = hashlib.sha256(listing.encode()).hexdigest()
    if digest != src.frames_sha256:
        raise ValueError(f"{where}/img1: listing sha256 {digest}, pinned {src.frames_sha256}")
    return gt, frames[:MAX_FRAMES]


def _gt_lines(gt: bytes, src: SequenceSource, n_frames: int, scale: float) -> list[str]:
    rows = []
    for line in gt.decode().splitlines():
        f = line.strip().split(",")
        if len(f) < 8:
            continue
        frame, tid, cls = int(float(f[0])), int(float(f[1])), int(float(f[7]))
        if not 1 <= frame <= n_frames or cls not in src.class_map:
            continue
        conf = src.class_map[cls] if float(f[6]) != 0 else 0   # "not considered" in the source: ignore
        x, y, w, h = (float(v) * scale for v in f[2:6])
        vis = float(f[8]) if len(f) > 8 and float(f[8]) >= 0 else 1.0
        rows.append((frame, tid, f"{frame},{tid},{x:.1f},{y:.1f},{w:.1f},{h:.1f},{conf},{src.cls},{vis:g}"))
    return [s for _, _, s in sorted(rows)]


def build_one(git_dir: Path, src: SequenceSource, out_dir: Path) -> dict:
    import cv2
    import numpy as np

    gt, frames = read_inputs(git_dir, src)       # every input checked before anything is written
    writer, size, scale, stem = None, (0, 0), 1.0, src.name
    for data in frames:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if writer is None:
            h, w = img.shape[:2]
            scale = min(1.0, MAX_WIDTH / w)
            size = (round(w * scale), round(h * scale))
            stem = f"{src.name}-{size[0]}x{size[1]}"
            writer = cv2.VideoWriter(str(out_dir / f"{stem}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), src.fps, size)
        writer.write(cv2.resize(img, size, interpolation=cv2.INTER_AREA) if scale != 1.0 else img)
    writer.release()
    lines = _gt_lines(gt, src, len(frames), scale)
    (out_dir / f"{stem}.gt.txt").write_text("\n".join(lines) + "\n")
    return {"name": stem, "frames": len(frames), "size": size, "class": src.cls, "static": src.static,
            "boxes": sum(1 for s in lines if s.split(",")[6] == "1"),
            "ignore": sum(1 for s in lines if s.split(",")[6] == "0")}


def build(mirror_dir_by_repo: Mapping[str, str | Path], out_dir: str | Path) -> list[dict]:
    """Convert every source whose repository has a fetched snapshot in `mirror_dir_by_repo`
    (owner/name -> bare git directory); returns one summary per written sequence."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [build_one(Path(mirror_dir_by_repo[src.repo]), src, out)
            for src in SOURCES if src.repo in mirror_dir_by_repo]


if __name__ == "__main__":
    mirrors = dict(a.split("=", 1) for a in sys.argv[2:])
    for row in build(mirrors, sys.argv[1]):
        print(row)
