"""Video pipeline: synthetic clips (geometry, stride, max-frames, tracker, truncated file), a
loopback MJPEG stream that drops (reconnect, clean end), and the real pedestrian clip."""
import http.server
import json
import socketserver
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from lowres_sdk import Classifier, SourceError
from lowres_sdk.regions import BoxesFile, FullFrame, MotionCrops, merge_boxes, parse_crops
from lowres_sdk.tracking import IoUTracker, TrackerConfig, iou_matrix
from lowres_sdk.video import SourceStats, frames, process, run

from conftest import SHARED_DATA

PEDESTRIANS = SHARED_DATA / "video" / "pedestrians-480x360.avi"


EMPTY_FRAMES = 20  # the scene without objects first, as a fixed camera sees it


def square_positions(n):
    """Two squares entering after EMPTY_FRAMES: A (20x20) moving right, B (14x30) moving down;
    x, y, w, h per frame (None before they appear)."""
    return [None if i < EMPTY_FRAMES else ((3 * i - 50, 30, 20, 20), (120, 2 * i - 35, 14, 30)) for i in range(n)]


def make_clip(path: Path, n=50, size=(160, 120), seed=0) -> list:
    """Textured squares (bright A, red B) moving over a static noisy background, written as MJPG."""
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    boxes = square_positions(n)
    background = rng.integers(60, 140, (size[1], size[0], 3)).astype(np.int16)
    # Random textures of distinct hues: a shifted square never looks like where it just was, nor
    # like a shadow of it (MOG2 drops pixels that are a darker copy of the background).
    bright = np.array([[255, 255, 255], [255, 255, 110], [110, 255, 255], [255, 110, 255]], np.uint8)
    dark = np.array([[0, 0, 255], [0, 255, 0], [255, 0, 0]], np.uint8)
    tex_a = bright[rng.integers(0, len(bright), (20, 20))]
    tex_b = dark[rng.integers(0, len(dark), (30, 14))]
    for pos in boxes:
        img = np.clip(background + rng.integers(-3, 4, background.shape), 0, 255).astype(np.uint8)
        for (x, y, w, h), tex in zip(pos or (), (tex_a, tex_b)):
            img[y:y + h, x:x + w] = tex
        writer.write(img)
    writer.release()
    return boxes


class BrightnessClassifier:
    """Stands in for a bundle: 'bright' if the crop's mean is high, else 'dark'; counts calls."""

    labels = ["dark", "bright"]

    def __init__(self):
        self.calls, self.crops = 0, 0

    def __call__(self, crops):
        self.calls += 1
        self.crops += len(crops)
        p = np.array([[0.2, 0.8] if c.mean() > 150 else [0.8, 0.2] for c in crops], np.float32)
        return SimpleNamespace(probs=p)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "squares.avi"
    return path, make_clip(path)


def test_frames_reads_every_frame_with_times(clip):
    path, boxes = clip
    stats = SourceStats()
    got = list(frames(path, stats))
    assert [f.index for f in got] == list(range(len(boxes)))
    assert got[1].t == pytest.approx(0.1) and got[0].image.shape == (120, 160, 3)
    assert (stats.frames_read, stats.frames_failed, stats.frame_count, stats.fps) == (50, 0, 50, 10.0)


@pytest.mark.parametrize("downscale", [1, 2])
def test_motion_boxes_match_the_moving_squares(clip, downscale):
    path, boxes = clip
    motion = MotionCrops(min_area=50, warmup=3, downscale=downscale)
    matched = 0
    for f in frames(path):
        found = motion(f.image, f.index)
        if boxes[f.index] is None:
            assert len(found) == 0  # a static scene gives no boxes
            continue
        ious = iou_matrix(np.array(boxes[f.index], float), found.astype(float))
        matched += int(len(found) == 2 and (ious.max(axis=1) > 0.5).all())
    assert matched >= 0.9 * (len(boxes) - EMPTY_FRAMES), matched


def test_stride_max_frames_and_tracking(clip):
    path, _ = clip
    clf = BrightnessClassifier()
    results = list(run(path, clf, MotionCrops(min_area=50, warmup=3), stride=2, max_frames=20))
    assert [r.index for r in results] == list(range(0, 40, 2))
    assert all((len(r.objects) >= 2) == (r.index >= EMPTY_FRAMES) for r in results)
    left = [d for r in results for d in r.objects if d.box[0] < 100]  # square A
    assert len({d.track for d in left}) == 1 and len(left) == 10  # one track over all its 10 frames
    assert {d.label for d in left} == {"bright"}
    assert {d.label for r in results for d in r.objects if d.box[0] >= 110} == {"dark"}  # square B
    assert clf.calls <= 2  # crops of several frames go to the classifier in one call (8 frames a batch)


def test_tracking_saves_classifications(clip):
    path, _ = clip
    counts = {}
    for track in (True, False):
        clf = BrightnessClassifier()
        counters = {}
        list(run(path, clf, MotionCrops(min_area=50, warmup=3), track=track, counters=counters))
        counts[track] = (clf.crops, counters["crops"])
    assert counts[False][0] == counts[False][1]  # every box classified on every frame
    assert counts[True][1] == counts[False][1]
    assert counts[True][0] < 0.3 * counts[False][0]


def test_tracker_reclassifies_on_growth_or_age():
    trk = IoUTracker(TrackerConfig(grow=0.2, every=5))
    due = [trk.update(np.array([[10, 10, 20, 20]]), 0)[0][1]]
    for f in range(1, 4):
        due.append(trk.update(np.array([[10 + f, 10, 20, 20]]), f)[0][1])
    assert due == [True, False, False, False]
    grown = trk.update(np.array([[13, 10, 23, 21]]), 4)  # area 483 > 400 * 1.2
    assert grown[0][1] and grown[0][0].id == 1
    assert [trk.update(np.array([[13, 10, 23, 21]]), f)[0][1] for f in range(5, 10)] == [False] * 4 + [True]
    new = trk.update(np.array([[100, 100, 10, 10]]), 10)
    assert new[0][0].id == 2 and new[0][1]


def test_label_smoothing_over_a_track():
    trk = IoUTracker(TrackerConfig(smoothing=0.5))
    track, _ = trk.update(np.array([[0, 0, 10, 10]]), 0)[0]
    trk.observe(track, np.array([1.0, 0.0]))
    assert np.allclose(trk.observe(track, np.array([0.0, 1.0])), [0.5, 0.5])


def test_merge_boxes_unions_overlaps():
    merged = merge_boxes(np.array([[0, 0, 10, 10], [5, 5, 10, 10], [50, 50, 5, 5]]))
    assert sorted(map(tuple, merged)) == [(0, 0, 15, 15), (50, 50, 5, 5)]


def test_boxes_file_and_full_frame(tmp_path):
    f = tmp_path / "det.txt"
    f.write_text("1,1,10,20,30,40,0.9,-1,-1,-1\n1,2,0,0,5,5,1,-1,-1,-1\n3,1,11,21,30,40,1,-1,-1,-1\n")
    boxes = BoxesFile(f)
    img = np.zeros((100, 100, 3), np.uint8)
    assert boxes(img, 0).tolist() == [[10, 20, 30, 40], [0, 0, 5, 5]]
    assert boxes(img, 1).shape == (0, 4) and boxes(img, 2).tolist() == [[11, 21, 30, 40]]
    assert FullFrame()(img, 0).tolist() == [[0, 0, 100, 100]]
    f.write_text("garbage\n")
    with pytest.raises(Exception, match="expected 'frame,id,x,y,w,h"):
        BoxesFile(f)
    with pytest.raises(Exception, match="--crops must be"):
        parse_crops("yolo")


def test_truncated_file_keeps_valid_outputs(clip, tiny_bundle, tmp_path):
    path, _ = clip
    cut = tmp_path / "cut.avi"
    data = path.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    summary = process(cut, Classifier(tiny_bundle.path), tmp_path / "out", MotionCrops(min_area=50, warmup=3),
                      progress=False, log=lambda m: None)
    lines = (tmp_path / "out" / "detections.jsonl").read_text().splitlines()
    assert 10 <= len(lines) < 40 and len(lines) == summary["frames_processed"]
    assert all(json.loads(line)["frame"] == i for i, line in enumerate(lines))
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["frames_read"] == len(lines)


def test_missing_and_unsupported_sources(tmp_path):
    with pytest.raises(SourceError, match="video not found"):
        next(frames(tmp_path / "none.avi"))
    bogus = tmp_path / "notavideo.avi"
    bogus.write_bytes(b"hello" * 100)
    with pytest.raises(SourceError, match="cannot open"):
        next(frames(bogus))


class _MJPEG(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for i in range(self.server.per_connection):
            _, buf = cv2.imencode(".jpg", np.full((48, 64, 3), (i * 8) % 256, np.uint8))
            try:
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(buf)
                                 + buf.tobytes() + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                return
            time.sleep(0.005)
        self.server.served += 1
        if self.server.served >= self.server.connections:  # stop for good: later connects are refused
            threading.Thread(target=lambda: (self.server.shutdown(), self.server.server_close())).start()


def test_stream_that_drops_reconnects_then_ends_cleanly():
    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), _MJPEG)
    server.per_connection, server.connections, server.served = 30, 2, 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/live.mjpg"
    stats, messages = SourceStats(), []
    start = time.monotonic()
    got = list(frames(url, stats, reconnect_attempts=2, backoff=0.05, timeout=5, log=messages.append))
    assert stats.kind == "stream" and stats.reconnects == 1
    assert len(got) == 60 and [f.index for f in got] == list(range(60))
    assert any("reconnecting" in m for m in messages) and "gave up after 2" in messages[-1]
    assert time.monotonic() - start < 20


@pytest.mark.skipif(not PEDESTRIANS.is_file(), reason=f"pedestrian clip not found at {PEDESTRIANS}")
def test_pedestrian_clip_end_to_end(tiny_bundle, tmp_path):
    summary = process(PEDESTRIANS, Classifier(tiny_bundle.path), tmp_path, progress=False)
    assert summary["frames_read"] == summary["frames_processed"] == 795 and summary["frames_failed"] == 0
    lines = [json.loads(line) for line in (tmp_path / "detections.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(795))
    with_objects = sum(bool(r["objects"]) for r in lines)
    assert with_objects > 0.8 * 795, with_objects
    sizes = [o["box"][3] for r in lines for o in r["objects"]]
    assert 15 < np.median(sizes) < 90  # pedestrians are 20-60 px tall
    cap = cv2.VideoCapture(str(tmp_path / "annotated.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 795 and (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (480, 360)


def test_missing_source_writes_nothing(tiny_bundle, tmp_path):
    with pytest.raises(SourceError, match="video not found"):
        process(tmp_path / "nope.mp4", Classifier(tiny_bundle.path), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
