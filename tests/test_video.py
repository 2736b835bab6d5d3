"""Video pipeline: synthetic clips (geometry, stride, max-frames, tracker, track evidence, truncated
file, killed and interrupted runs), a loopback MJPEG stream that drops (reconnect, clean end), and
the real pedestrian clip (stride 6 keeps tracks; threads give the sequential path's results)."""
import http.server
import json
import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from lowres_sdk import Classifier, InputError, SourceError
from lowres_sdk.video.regions import BoxesFile, FullFrame, MotionCrops, merge_boxes, parse_crops, split_by_columns
from lowres_sdk.video.tracking import IoUTracker, TrackerConfig, iou_matrix
from lowres_sdk.video import frames, process, run

from conftest import SHARED_DATA

PEDESTRIANS = SHARED_DATA / "video" / "pedestrians-480x360.avi"


EMPTY_FRAMES = 20  # the scene without objects first, as a fixed camera sees it


def square_positions(n):
    """Two squares entering after EMPTY_FRAMES: A (20x20) moving right, B (14x30) moving down;
    x, y, w, h per frame (None before they appear)."""
    return [None if i < EMPTY_FRAMES else ((3 * i - 50, 30, 20, 20), (120, 2 * i - 35, 14, 30)) for i in range(n)]


def make_clip(path: Path, n=50, size=(160, 120), seed=0, fps=10) -> list:
    """Textured squares (bright A, red B) moving over a static noisy background, written as MJPG."""
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    boxes = square_positions(n)
    background = rng.integers(60, 140, (size[1], size[0], 3)).astype(np.int16)
    # Random textures of distinct hues: a shifted square never looks like where it just was, nor
    # like a shadow of it (MOG2 drops pixels that are a darker copy of the background).
    bright = np.array([[255, 255, 255], [255, 255, 110], [110, 255, 255], [255, 110, 255]], np.uint8)
    # ... and B of very different luminances, as the motion mask is grayscale (hues alone average away)
    dark = np.array([[0, 0, 0], [0, 255, 0], [255, 0, 255]], np.uint8)
    tex_a = bright[rng.integers(0, len(bright), (20, 20))]
    tex_b = dark[rng.integers(0, len(dark), (30, 14))]
    for pos in boxes:
        img = np.clip(background + rng.integers(-3, 4, background.shape), 0, 255).astype(np.uint8)
        for (x, y, w, h), tex in zip(pos or (), (tex_a, tex_b)):
            x, y = x % (size[0] - w), y % (size[1] - h)  # long clips: the squares wrap around
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


def squares_motion():
    """Motion crops for the squares clip, in colour: the tests of the pipeline's logic need both squares found."""
    return MotionCrops(min_area=50, warmup=3, downscale=2, gray=False)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "squares.avi"
    return path, make_clip(path)


def test_frames_reads_every_frame_with_times(clip):
    path, boxes = clip
    reader = frames(path)
    got = list(reader)
    assert [f.index for f in got] == list(range(len(boxes)))
    assert got[1].t == pytest.approx(0.1) and got[0].image.shape == (120, 160, 3)
    stats = reader.stats
    assert (stats.frames_read, stats.frames_failed, stats.frame_count, stats.fps) == (50, 0, 50, 10.0)


def test_stride_grabs_skipped_frames(clip):
    path, _ = clip
    reader = frames(path, stride=3)
    got = list(reader)
    assert [f.index for f in got] == list(range(0, 50, 3)) and got[1].t == pytest.approx(0.3)
    assert (reader.stats.frames_read, reader.stats.frames_skipped) == (17, 33)
    with pytest.raises(InputError, match="stride"):
        frames(path, stride=0)
    with pytest.raises(InputError, match="stride"):
        run(path, BrightnessClassifier(), stride=0)


# In gray, B's three-value texture, sliding 2 px a frame under itself, is partly learnt as background
# by MOG2's fast early learning: 25 and 22 of 30 frames have both squares at IoU > 0.5 (colour: all).
@pytest.mark.parametrize("options,share", [(dict(min_size=4), 0.8), (dict(min_size=8), 0.7), (dict(downscale=2, gray=False), 0.9)])
def test_motion_boxes_match_the_moving_squares(clip, options, share):
    path, boxes = clip
    motion = MotionCrops(min_area=50, warmup=3, **options)
    matched = 0
    for f in frames(path):
        found = motion(f.image, f.index)
        if boxes[f.index] is None:
            assert len(found) == 0  # a static scene gives no boxes
            continue
        ious = iou_matrix(np.array(boxes[f.index], float), found.astype(float))
        matched += int(len(found) == 2 and (ious.max(axis=1) > 0.5).all())
    assert matched >= share * (len(boxes) - EMPTY_FRAMES), matched


def test_stride_max_frames_and_tracking(clip):
    path, _ = clip
    clf = BrightnessClassifier()
    results = list(run(path, clf, squares_motion(), stride=2, max_frames=20))
    assert [r.index for r in results] == list(range(0, 40, 2))
    assert all((len(r.detections) >= 2) == (r.index >= EMPTY_FRAMES) for r in results)
    left = [d for r in results for d in r.detections if d.box[0] < 100]  # square A
    assert len({d.track for d in left}) == 1 and len(left) == 10  # one track over all its 10 frames
    assert [d.status for d in left] == ["tentative"] * 2 + ["object"] * 8  # reported from its 3rd frame (min_hits)
    assert {d.label for d in left} == {"bright"}
    assert {d.label for r in results for d in r.detections if d.box[0] >= 110} == {"dark"}  # square B
    assert clf.calls <= 2  # crops of several frames go to the classifier in one call (8 frames a batch)


def test_tracking_saves_classifications(clip):
    path, _ = clip
    counts = {}
    for track in (True, False):
        clf = BrightnessClassifier()
        results = run(path, clf, squares_motion(), track=track)
        list(results)
        assert results.crops_classified == clf.crops
        counts[track] = (clf.crops, results.crops_seen)
    assert counts[False][0] == counts[False][1]  # every box classified on every frame
    assert counts[True][1] == counts[False][1]
    assert counts[True][0] < 0.3 * counts[False][0]


def test_tracker_reclassifies_on_growth_or_age():
    trk = IoUTracker(TrackerConfig(grow=0.2, every=5))
    due = [trk.update(np.array([[10, 10, 20, 20]]))[0][1]]
    for f in range(1, 4):
        due.append(trk.update(np.array([[10 + f, 10, 20, 20]]))[0][1])
    assert due == [True, False, False, False]
    grown = trk.update(np.array([[13, 10, 23, 21]]))  # area 483 > 400 * 1.2
    assert grown[0][1] and grown[0][0].id == 1
    assert [trk.update(np.array([[13, 10, 23, 21]]))[0][1] for f in range(5, 10)] == [False] * 4 + [True]
    new = trk.update(np.array([[100, 100, 10, 10]]))
    assert new[0][0].id == 2 and new[0][1]


def test_tracks_that_never_travel_stay_tentative():
    config = IoUTracker().config
    trk = IoUTracker()
    still = [trk.update(np.array([[50, 50, 20, 20]]))[0][0] for _ in range(10)][-1]  # flicker: seen 10 times, never moves
    assert still.hits == 10 and still.travel == 0 and not config.confirmed(still)
    assert TrackerConfig(min_travel=0).confirmed(still)
    trk = IoUTracker()
    walker = [trk.update(np.array([[10 + f, 10, 20, 20]]))[0][0] for f in range(3)][-1]  # 2 px of a 20 px box
    assert walker.travel == pytest.approx(0.1) and config.confirmed(walker)
    assert not config.confirmed(IoUTracker().update(np.array([[0, 0, 20, 20]]))[0][0])  # 1 hit < min_hits


def test_track_ages_count_processed_frames():
    trk = IoUTracker(TrackerConfig(max_age=2))
    first = trk.update(np.array([[0, 0, 10, 10]]))[0][0]
    trk.update(np.zeros((0, 4)))
    trk.update(np.zeros((0, 4)))
    assert trk.update(np.array([[1, 0, 10, 10]]))[0][0] is first  # unseen for 2 processed frames: alive
    for _ in range(3):
        trk.update(np.zeros((0, 4)))
    assert trk.update(np.array([[1, 0, 10, 10]]))[0][0].id == 2


def test_track_label_from_size_weighted_evidence():
    track, _ = IoUTracker().update(np.array([[0, 0, 10, 10]]))[0]
    IoUTracker.observe(track, np.array([0.9, 0.1]), weight=30)  # a big, clear view
    p = IoUTracker.observe(track, np.array([0.2, 0.8]), weight=10)  # the last crop is small and disagrees
    z = (30 * np.log([0.9, 0.1]) + 10 * np.log([0.2, 0.8])) / 40
    assert np.allclose(p, np.exp(z) / np.exp(z).sum()) and p.argmax() == 0 and p.sum() == pytest.approx(1)


class ThreeClassClassifier:
    """'thing' for bright crops (weakly: 0.5), 'other' (background) for the rest; like a calibrated bundle."""

    labels = ["thing", "other", "cat"]
    unknown_below = 0.6
    bright, dark = [0.5, 0.3, 0.2], [0.1, 0.8, 0.1]  # the probabilities of bright and of dark crops

    def __call__(self, crops):
        return SimpleNamespace(probs=np.array([self.bright if c.mean() > 150 else self.dark for c in crops], np.float32))


def test_unknown_background_and_tentative_tracks(clip):
    path, _ = clip
    results = list(run(path, ThreeClassClassifier(), squares_motion()))
    a = [d for r in results for d in r.detections if d.box[0] < 100 and d.box[1] < 60]  # bright square A
    b = [d for r in results for d in r.detections if d.box[0] >= 110]  # dark square B
    assert {d.label for d in a} == {"unknown"} and {d.status for d in a[2:]} == {"object"}  # 0.5 < 0.6
    assert {d.label for d in b} == {"other"} and {d.status for d in b[2:]} == {"background"}
    assert all(d.status == "tentative" for d in a[:2] + b[:2])
    line = results[-1].to_json()
    assert [o["label"] for o in line["objects"]] == ["unknown"] and [o["label"] for o in line["background"]] == ["other"]
    assert sorted(o["label"] for r in results for o in r.to_json()["tentative"]) == ["other", "other", "unknown", "unknown"]
    everything = list(run(path, ThreeClassClassifier(), squares_motion(), ignore_labels=(),
                          tracker=TrackerConfig(min_hits=1, min_travel=0)))
    assert sum(len(r.objects) for r in everything) == sum(len(r.detections) for r in results)


class UnsureBackground(ThreeClassClassifier):
    """'other' (background) as the best label of dark crops, but only at 0.5, under the threshold."""

    bright, dark = [0.7, 0.2, 0.1], [0.3, 0.5, 0.2]


def test_an_unsure_background_track_stays_background_not_unknown(clip):
    path, _ = clip
    results = list(run(path, UnsureBackground(), squares_motion()))
    b = [d for r in results for d in r.detections if d.box[0] >= 110]  # dark square B: 'other' at 0.5 < 0.6
    assert {d.label for d in b} == {"other"} and {d.status for d in b[2:]} == {"background"}
    assert all(d.label == "thing" and d.status == "object" for r in results for d in r.objects)  # 0.7 >= 0.6
    # per-label thresholds (a dict, as a calibrated bundle's): 'thing' at 0.7 is unknown under its own 0.8
    strict = UnsureBackground()
    strict.unknown_below = {"thing": 0.8, "other": 0.6, "cat": 0.6}
    assert {d.label for r in run(path, strict, squares_motion()) for d in r.objects} == {"unknown"}


def test_split_by_columns_separates_side_by_side_blobs():
    mask = np.zeros((20, 20), np.uint8)
    mask[2:12, 2:6] = 255   # one walker
    mask[5:18, 8:13] = 255  # another, one empty column to the right
    assert split_by_columns(mask, [2, 2, 11, 16]) == [[2, 2, 4, 10], [8, 5, 5, 13]]
    mask[8, 6:8] = 255      # blobs that touch cannot be split
    assert split_by_columns(mask, [2, 2, 11, 16]) == [[2, 2, 11, 16]]


def test_motion_scale_follows_min_size():
    assert MotionCrops(min_size=12).scale == pytest.approx(1 / 3) and MotionCrops(min_size=2).scale == 1.0
    assert MotionCrops(downscale=2).scale == 0.5
    with pytest.raises(InputError):
        MotionCrops(min_size=0)


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
    summary = process(cut, Classifier(tiny_bundle.path), tmp_path / "out", squares_motion(),
                      progress=False, log=lambda m: None)
    lines = (tmp_path / "out" / "detections.jsonl").read_text().splitlines()
    assert 10 <= len(lines) < 40 and len(lines) == summary["frames_processed"]
    assert all(json.loads(line)["frame"] == i for i, line in enumerate(lines))
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["frames_read"] == len(lines) and saved["finished"]
    assert saved["truncated"] and saved["frames_unread"] > 0
    assert saved["frames_read"] + saved["frames_failed"] + saved["frames_unread"] == 50
    p = _cli("video", cut, "--crops", "motion", "--bundle", tiny_bundle.path, "--out", tmp_path / "cli", "--no-video")
    # a file that decodes to its end is finished, whatever its header claims: a warning, exit 0
    assert p.returncode == 0 and "fewer than its header announces" in p.stderr, p.stderr


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "lowres_sdk.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, **kw)


def test_process_with_a_callback_and_no_files(clip, tmp_path, monkeypatch):
    path, _ = clip
    monkeypatch.chdir(tmp_path)
    seen = []
    summary = process(path, BrightnessClassifier(), None, squares_motion(), callback=seen.append,
                      progress=False)
    assert [r.index for r in seen] == list(range(50)) and summary["frames_processed"] == 50
    assert summary["objects"] == sum(len(r.objects) for r in seen) and summary["tracks"] == 2
    assert summary["track_labels"] == {"bright": 1, "dark": 1} and summary["finished"]
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler (KeyboardInterrupt) for the test: CI may start us with SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_while_a_frame_is_written_keeps_outputs_and_counts_in_step(clip, tmp_path, python_sigint):
    path, _ = clip

    def interrupt(result):  # after frame 9's JSON line, before the frame is counted
        if result.index == 9:
            os.kill(os.getpid(), signal.SIGINT)

    summary = process(path, BrightnessClassifier(), tmp_path / "out", squares_motion(), callback=interrupt,
                      write_video=False, progress=False)
    assert summary["interrupted"] and not summary["finished"]
    assert summary["frames_processed"] == len((tmp_path / "out" / "detections.jsonl").read_text().splitlines()) == 10
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["frames_processed"] == 10


def test_a_second_ctrl_c_stops_a_hanging_callback_at_once(clip, python_sigint):
    path, _ = clip
    reached = []

    def hang(result):  # the first Ctrl-C is held for the frame; the second ends the wait
        if result.index == 3:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            reached.append(True)  # not reached: the second raised inside the callback

    summary = process(path, BrightnessClassifier(), None, squares_motion(), callback=hang, progress=False)
    assert summary["interrupted"] and summary["frames_processed"] == 3 and not reached


@pytest.fixture
def endless_stream(tmp_path):
    """An MJPEG stream of make_clip's moving squares at 320x240 that never ends (about 200 frames/s until
    the client goes): a signal sent once N frames are processed always finds the run still going,
    however fast the machine."""
    make_clip(tmp_path / "loop.avi", n=60, size=(320, 240))
    cap = cv2.VideoCapture(str(tmp_path / "loop.avi"))
    jpegs = []
    while (frame := cap.read()[1]) is not None:
        jpegs.append(cv2.imencode(".jpg", frame)[1].tobytes())

    class Endless(_MJPEG):
        def jpeg(self, i: int) -> bytes:
            return jpegs[i % len(jpegs)]

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Endless)
    server.per_connection, server.connections, server.served = 10 ** 9, 1, 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/live.mjpg"
    server.shutdown()
    server.server_close()


def _start_and_wait(args, jsonl: Path, lines: int):
    # SIGINT as a terminal delivers it: a shell that starts jobs in the background (CI under nohup, `cmd &`)
    # hands them SIGINT ignored, and Python then installs no KeyboardInterrupt handler at all.
    proc = subprocess.Popen([sys.executable, "-m", "lowres_sdk.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if jsonl.is_file() and len(jsonl.read_text().splitlines()) >= lines:
            return proc
        time.sleep(0.01)
    proc.kill()
    pytest.fail(f"the run ended or stalled before writing {lines} lines: {proc.communicate()}")


def test_killed_run_leaves_a_readable_video_and_says_unfinished(tiny_bundle, tmp_path, endless_stream):
    out = tmp_path / "out"
    proc = _start_and_wait(["video", endless_stream, "--crops", "motion", "--bundle", tiny_bundle.path, "--out", out],
                           out / "detections.jsonl", 300)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cap = cv2.VideoCapture(str(out / "annotated.mkv"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n >= 50, n  # a killed .mp4 opened with 0 frames
    assert json.loads((out / "summary.json").read_text())["finished"] is False


def test_interrupted_run_exits_130(tiny_bundle, tmp_path, endless_stream):
    out = tmp_path / "out"
    proc = _start_and_wait(["video", endless_stream, "--crops", "motion", "--bundle", tiny_bundle.path, "--out", out, "--no-video"],
                           out / "detections.jsonl", 50)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and not summary["finished"]
    assert summary["frames_processed"] == len((out / "detections.jsonl").read_text().splitlines()) >= 50


def test_missing_and_unsupported_sources(tmp_path):
    with pytest.raises(SourceError, match="video not found"):
        next(iter(frames(tmp_path / "none.avi")))
    bogus = tmp_path / "notavideo.avi"
    bogus.write_bytes(b"hello" * 100)
    with pytest.raises(SourceError, match="cannot open"):
        next(iter(frames(bogus)))


class _MJPEG(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def jpeg(self, i: int) -> bytes:
        return cv2.imencode(".jpg", np.full((48, 64, 3), (i * 8) % 256, np.uint8))[1].tobytes()

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for i in range(self.server.per_connection):
            buf = self.jpeg(i)
            try:
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(buf)
                                 + buf + b"\r\n")
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
    messages = []
    start = time.monotonic()
    reader = frames(url, reconnect_attempts=2, backoff=0.05, timeout=5, log=messages.append)
    got, stats = list(reader), reader.stats
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
    cap = cv2.VideoCapture(str(tmp_path / "annotated.mkv"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 795 and (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (480, 360)


def test_missing_source_writes_nothing(tiny_bundle, tmp_path):
    with pytest.raises(SourceError, match="video not found"):
        process(tmp_path / "nope.mp4", Classifier(tiny_bundle.path), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def _track_count(results) -> int:
    return len({d.track for r in results for d in r.detections})


@pytest.mark.skipif(not PEDESTRIANS.is_file(), reason=f"pedestrian clip not found at {PEDESTRIANS}")
def test_pedestrian_tracks_survive_stride_6():
    counts = {stride: _track_count(run(PEDESTRIANS, BrightnessClassifier(), stride=stride)) for stride in (1, 6)}
    assert counts[1] > 50 and counts[6] <= 1.5 * counts[1], counts  # tracks that counted source frames: 643 vs 233


@pytest.mark.skipif(not PEDESTRIANS.is_file(), reason=f"pedestrian clip not found at {PEDESTRIANS}")
def test_threads_give_the_sequential_results(tiny_bundle):
    clf = Classifier(tiny_bundle.path)
    got = {}
    for threads in (False, True):
        got[threads] = [(r.index, [(d.box, d.track, d.label, round(d.score, 6), d.classified, d.status) for d in r.detections])
                        for r in run(PEDESTRIANS, clf, threads=threads)]
    assert len(got[True]) == 795 and sum(len(d) for _, d in got[True]) > 2000
    assert got[True] == got[False]


@pytest.mark.parametrize("content", [b"1,1,inf,2,3,4\n", b"1,1,1e30,2,3,4\n", b"1,1,nan,2,3,4\n", bytes(range(256)) * 4])
def test_boxes_file_with_non_finite_or_binary_content_is_an_input_error(tmp_path, content):
    from lowres_sdk.errors import InputError
    from lowres_sdk.video.regions import parse_crops

    path = tmp_path / "boxes.txt"
    path.write_bytes(content)
    with pytest.raises(InputError):
        parse_crops(f"boxes:{path}")


@pytest.mark.skipif(not PEDESTRIANS.is_file(), reason=f"pedestrian clip not found at {PEDESTRIANS}")
def test_one_decoder_thread_gives_the_same_frames():
    default = [f.image for f in frames(PEDESTRIANS)][:60:7]
    one = [f.image for f in frames(PEDESTRIANS, decode_threads=1)][:60:7]
    assert len(one) == len(default) == 9 and all(np.array_equal(a, b) for a, b in zip(one, default))
    for bad in (0, 1.5, "2"):
        with pytest.raises(InputError, match="decode_threads"):
            frames(PEDESTRIANS, decode_threads=bad)
