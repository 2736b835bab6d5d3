"""Rebuild `lowres demo`'s assets (sdk/demo_assets/) from MEVA footage no model here trained on.

Source: three 150-frame clips of two fixed outdoor cameras (MEVA KF1 by Kitware Inc. and IARPA, CC BY 4.0)
with their audited person / vehicle boxes, as the public CVBench repository below holds them: its frames at
FRAMES_COMMIT (896 px wide, JPEG), its boxes at GT_COMMIT. Every input is read out of a fetched snapshot with
`git show COMMIT:PATH` and checked against a pinned sha256 (the boxes directly, each frame through the pinned
list of frame hashes) before use.

Output (deterministic rules, never chosen by how a model does on them):
- ``crops/``: of every person / vehicle track, VIEWS_PER_TRACK boxes evenly spaced in time among those that
  touch no image edge, are at least MIN_SIDE px on each side and (people) lie at most half inside a vehicle's
  box (a person at an open car door or behind a boot lid: the box shows mostly car), cut at the box and
  shrunk (INTER_AREA) to at most STORED_MAX px on the longer side; plus one background window per
  WINDOW_FRAMES frame of each clip (tall 1:2 and wide 4:3 in turn) at a seeded random place inside a region
  of the camera that holds no parked object (FREE_REGIONS, marked by eye once per camera), touching no
  annotated box;
- ``clip.mp4`` + ``clip.gt.txt``: the G328 clip (H.264 CRF 26, needs PyAV: pip install av) and its boxes
  in MOT format (class 1 person, 3 vehicle), scaled with it;
- ``demo.json``: what each file is, where it came from and its sha256.

Usage:  python -m training.demo_assets OUT_DIR GIT_DIR   (GIT_DIR: the snapshot's git directory)
"""
from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

REPO = "the-Drunken-coder/cvbench-system-runner"
FRAMES_COMMIT = "b1a03e093224da4bbfc18d4b33d04821e3d88164"  # the last commit that holds the frames
GT_COMMIT = "2029c92baeee88cf073f22fd98ac68e6a7c17d5c"      # the boxes after the repository's visual audit
FRAME_DIR = "scenario-catalog/media/real-video-v2"
PINNED = {  # path at GT_COMMIT -> sha256
    "scenarios/real-video-v2/expected-frame-sha256.txt":
        "636a3f0224d15a9c4b62ccca79266922364343226b93bd38a1e630777a8de0a9",
    "scenarios/real-video-v2/rvmot-a1c9/ground_truth.jsonl":
        "0d920f2d380fa4fe656f1424e7d8ea2e4021d90f1702dcd5e41dcbec75e3d292",
    "scenarios/real-video-v2/rvmot-b7e2/ground_truth.jsonl":
        "f2581e4f38e1986fcd99b1db4fe3ac99fac4b992bc1c65a8776e7dc10cdb414f",
    "scenarios/real-video-v2/rvmot-c4f6/ground_truth.jsonl":
        "44912de9405ddda545f6052728ce4ac9141b07cf18b38a04582aaa861dfb3ac4",
}
# clip -> (MEVA camera, MEVA source video and frames)
SEQUENCES = {
    "rvmot-a1c9": ("G340", "2018-03-05.13-15-00.13-20-00.bus.G340.r13.avi, frames 2813-2962"),
    "rvmot-b7e2": ("G340", "2018-03-05.13-15-00.13-20-00.bus.G340.r13.avi, frames 3039-3188"),
    "rvmot-c4f6": ("G328", "2018-03-05.13-20-01.13-25-01.school.G328.r13.avi, frames 3272-3421"),
}
FPS = 30
FRAMES = 150
# x0, y0, x1, y1 in the 896 px frame: no parked car, standing person or other object of a class
FREE_REGIONS = {"G340": ((0, 70, 896, 504),),                         # below the far car park
                "G328": ((0, 285, 560, 360), (0, 440, 770, 500))}     # grass above and below the parked row
VIEWS_PER_TRACK = 4
MIN_SIDE = 12           # px in the 896 px frame
MAX_IN_VEHICLE = 0.5    # the largest share of a person's box that may lie inside a vehicle's box
STORED_MAX = 48         # the longest side a crop is stored at (the product's largest input)
WINDOW_FRAMES = (0, 75, 149)
WINDOW_SIDE = (32, 96)  # px, the long side of a background window
SEED = 0
CLIP = "rvmot-c4f6"
CLIP_SCALE = 1.0  # the objects are small already: people 14-30 px wide
CLIP_CRF = 26
MOT_CLASS = {"person": 1, "vehicle": 3}


def _git_show(git_dir: Path, commit: str, path: str) -> bytes:
    return subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{commit}:{path}"], check=True,
                          capture_output=True).stdout


def _checked(data: bytes, sha256: str, what: str) -> bytes:
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise SystemExit(f"{what}: sha256 {got}, pinned {sha256}: not the pinned input")
    return data


class Snapshot:
    """The pinned files of the snapshot, each checked before use."""

    def __init__(self, git_dir: Path):
        self.git_dir = git_dir
        self.files = {p: _checked(_git_show(git_dir, GT_COMMIT, p), sha, p) for p, sha in PINNED.items()}
        listing = self.files["scenarios/real-video-v2/expected-frame-sha256.txt"].decode()
        self.frame_sha = {path: sha for sha, path in (line.split() for line in listing.splitlines() if line)}

    def frame(self, seq: str, index: int) -> np.ndarray:
        rel = f"{seq}/frames/frame-{index:04d}.jpg"
        data = _checked(_git_show(self.git_dir, FRAMES_COMMIT, f"{FRAME_DIR}/{rel}"), self.frame_sha[rel], rel)
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)

    def tracks(self, seq: str) -> dict[str, dict]:
        """track id -> {category, boxes: [(frame, (x0, y0, x1, y1), truncated)]}, frames in order."""
        out: dict[str, dict] = {}
        for line in self.files[f"scenarios/real-video-v2/{seq}/ground_truth.jsonl"].decode().splitlines():
            row = json.loads(line)
            frame = round(row["source_timestamp_ns"] * FPS / 1e9)
            track = out.setdefault(row["target_id"], {"category": row["class_id"], "boxes": []})
            track["boxes"].append((frame, tuple(row["bbox_xyxy"]), bool(row["truncated"])))
        for track in out.values():
            track["boxes"].sort()
        return out


def _cut(image: np.ndarray, box) -> np.ndarray:
    x0, y0 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    x1, y1 = min(image.shape[1], math.ceil(box[2])), min(image.shape[0], math.ceil(box[3]))
    return image[y0:y1, x0:x1]


def shrink(crop: np.ndarray, max_side: int) -> np.ndarray:
    """``crop`` with its longer side at most ``max_side`` px (INTER_AREA, the aspect kept)."""
    h, w = crop.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return crop
    return cv2.resize(crop, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def _inside(a, b) -> float:
    """The share of box ``a``'s area inside box ``b`` (x0, y0, x1, y1)."""
    w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    return max(0.0, w) * max(0.0, h) / max(1e-9, (a[2] - a[0]) * (a[3] - a[1]))


def pick_views(track: dict, vehicles: dict[int, list[tuple]]) -> list[tuple]:
    """VIEWS_PER_TRACK of a track's boxes, evenly spaced in time, among the usable ones (module docstring);
    ``vehicles``: frame -> the vehicle boxes on it, the track's own left out."""
    usable = [b for b in track["boxes"] if not b[2] and min(b[1][2] - b[1][0], b[1][3] - b[1][1]) >= MIN_SIDE
              and (track["category"] != "person"
                   or all(_inside(b[1], v) <= MAX_IN_VEHICLE for v in vehicles.get(b[0], ())))]
    if not usable:
        return []
    picks = np.unique(np.linspace(0, len(usable) - 1, VIEWS_PER_TRACK).round().astype(int))
    return [usable[i] for i in picks]


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def background_window(camera: str, aspect: float, boxes: list[tuple], rng: np.random.Generator) -> tuple | None:
    """A window of ``aspect`` (width / height) inside the camera's free regions, touching none of ``boxes``."""
    for _ in range(1000):
        long_side = rng.uniform(*WINDOW_SIDE)
        w, h = (long_side * aspect, long_side) if aspect < 1 else (long_side, long_side / aspect)
        region = FREE_REGIONS[camera][rng.integers(len(FREE_REGIONS[camera]))]
        if w > region[2] - region[0] or h > region[3] - region[1]:
            continue
        x0, y0 = rng.uniform(region[0], region[2] - w), rng.uniform(region[1], region[3] - h)
        window = (round(x0), round(y0), round(x0 + w), round(y0 + h))
        if not any(_overlaps(window, b) for b in boxes):
            return window
    return None


def _write_png(path: Path, image: np.ndarray) -> str:
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    path.write_bytes(data.tobytes())
    return hashlib.sha256(data.tobytes()).hexdigest()


def _record(out: Path, name: str, image: np.ndarray, **source) -> dict:
    crop = shrink(image, STORED_MAX)
    return {"file": f"crops/{name}.png", **source, "size": list(crop.shape[1::-1]),
            "sha256": _write_png(out / "crops" / f"{name}.png", crop)}


def build_crops(snap: Snapshot, out: Path) -> list[dict]:
    """The still crops (files under ``out``/crops) and their records."""
    (out / "crops").mkdir(parents=True, exist_ok=True)
    rng, records, windows = np.random.default_rng(SEED), [], 0
    for seq, (camera, _) in SEQUENCES.items():
        tracks = snap.tracks(seq)
        for tid, track in sorted(tracks.items()):
            vehicles = defaultdict(list)
            for other, t in tracks.items():
                for frame, box, _ in t["boxes"] if t["category"] == "vehicle" and other != tid else ():
                    vehicles[frame].append(box)
            for frame, box, _ in pick_views(track, vehicles):
                records.append(_record(out, f"{track['category']}-{seq[-4:]}-{tid}-f{frame:03d}",
                                       _cut(snap.frame(seq, frame), box), category=track["category"],
                                       sequence=seq, camera=camera, track=tid, frame=frame,
                                       box_xyxy=[round(v, 1) for v in box]))
        for frame in WINDOW_FRAMES:
            boxes = [box for t in tracks.values() for f, box, _ in t["boxes"] if f == frame]
            window = background_window(camera, 0.5 if windows % 2 == 0 else 4 / 3, boxes, rng)
            windows += 1
            if window is not None:
                records.append(_record(out, f"background-{seq[-4:]}-f{frame:03d}", _cut(snap.frame(seq, frame), window),
                                       category="background", sequence=seq, camera=camera, track=None, frame=frame,
                                       box_xyxy=list(window)))
    return records


def _encode_h264(frames: list[np.ndarray], path: Path) -> None:
    try:
        import av
    except ImportError:
        raise SystemExit("writing the clip needs PyAV (H.264 through its bundled FFmpeg): pip install av") from None
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(CLIP_CRF), "preset": "slow"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def build_clip(snap: Snapshot, out: Path) -> dict:
    """``out``/clip.mp4 and clip.gt.txt (MOT: frame from 1, id, x, y, w, h, conf 1, class, -1)."""
    frames = []
    for i in range(FRAMES):
        image = snap.frame(CLIP, i)
        size = (round(image.shape[1] * CLIP_SCALE), round(image.shape[0] * CLIP_SCALE))
        frames.append(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    _encode_h264(frames, out / "clip.mp4")
    lines, ids = [], {}
    for tid, track in sorted(snap.tracks(CLIP).items()):
        ids[tid] = len(ids) + 1
        for frame, (x0, y0, x1, y1), _ in track["boxes"]:
            s = CLIP_SCALE
            lines.append((frame + 1, ids[tid], f"{frame + 1},{ids[tid]},{x0 * s:.1f},{y0 * s:.1f},"
                          f"{(x1 - x0) * s:.1f},{(y1 - y0) * s:.1f},1,{MOT_CLASS[track['category']]},-1"))
    (out / "clip.gt.txt").write_text("".join(line + "\n" for *_, line in sorted(lines)))
    h, w = frames[0].shape[:2]
    return {"file": "clip.mp4", "gt": "clip.gt.txt", "sequence": CLIP, "camera": SEQUENCES[CLIP][0],
            "origin": SEQUENCES[CLIP][1], "fps": FPS, "frames": FRAMES, "width": w, "height": h,
            "tracks": {tid: {"id": ids[tid], "category": t["category"]}
                       for tid, t in sorted(snap.tracks(CLIP).items())},
            "sha256": hashlib.sha256((out / "clip.mp4").read_bytes()).hexdigest(),
            "gt_sha256": hashlib.sha256((out / "clip.gt.txt").read_bytes()).hexdigest()}


def build(out: Path, git_dir: Path) -> dict:
    snap = Snapshot(git_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in (out / "crops").glob("*.png"):  # a rebuild leaves no crop of an earlier rule behind
        old.unlink()
    meta = {"source": {"repository": REPO, "frames_commit": FRAMES_COMMIT, "gt_commit": GT_COMMIT,
                       "dataset": "MEVA Known Facility 1 (Kitware Inc. and IARPA)", "licence": "CC BY 4.0",
                       "sequences": {seq: {"camera": cam, "origin": origin}
                                     for seq, (cam, origin) in SEQUENCES.items()}},
            "crops": build_crops(snap, out), "clip": build_clip(snap, out)}
    (out / "demo.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    meta = build(Path(sys.argv[1]), Path(sys.argv[2]))
    total = sum(f.stat().st_size for f in Path(sys.argv[1]).rglob("*") if f.is_file())
    print(f"{len(meta['crops'])} crops and a {meta['clip']['frames']}-frame clip in {sys.argv[1]} "
          f"({total / 1024:.0f} KiB)")
