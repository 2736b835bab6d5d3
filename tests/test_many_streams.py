"""Many streams in one process: sources files checked line by line before anything starts, each
stream's JSONL equal to the single-stream pipeline's, crops of several streams in one model call,
rate per stream in source time, a failing stream isolated, a realtime stream that falls behind drops
(a file never does), a resumed stream writing each frame exactly once; and live RTSP streams from
GStreamer's RTSP server (several at once, a server restart, a server gone)."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lowres_sdk import InputError
from lowres_sdk.video import ManyOptions, StreamSpec, process, process_many, read_sources
from lowres_sdk.video.many import StreamRunner
from lowres_sdk.video.regions import FullFrame
from lowres_sdk.video.sources import specs_from

from conftest import SHARED_DATA
from test_video import BrightnessClassifier, make_clip, squares_motion


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    paths = []
    for seed in range(3):
        path = root / f"squares{seed}.avi"
        make_clip(path, n=40, seed=seed)
        paths.append(path)
    return paths


def jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sources_file_lines_names_and_options(clips, tmp_path):
    listing = tmp_path / "cams.txt"
    listing.write_text(f"# two cameras\n{clips[0]} front fps=5 realtime=true\n\n{clips[1]}  # a comment\n"
                       "rtsp://127.0.0.1:8554/cam1 max_frames=3\n")
    specs = read_sources(listing, fps=2)
    assert [(s.name, s.fps, s.realtime, s.live) for s in specs] == [
        ("front", 5.0, True, True), ("squares1", 2, False, False), ("cam1", 2, False, True)]
    assert specs[2].max_frames == 3 and specs[2].source == "rtsp://127.0.0.1:8554/cam1"


@pytest.mark.parametrize("line,message", [
    ("missing.avi", "video not found"),
    ("rtsp:///nohost", "bad URL"),
    ("ftp://127.0.0.1/x", "unsupported URL scheme"),
    ("{clip} fps=fast", "bad value"),
    ("{clip} speed=2", "unknown option"),
    ("{clip} crops=people", "crops must be"),
    ("{clip} a\n{clip} a", "duplicate stream name 'a'"),
])
def test_malformed_sources_lines_name_the_line(clips, tmp_path, line, message):
    listing = tmp_path / "cams.txt"
    listing.write_text(f"{clips[0]} ok\n" + line.format(clip=clips[1]) + "\n")
    with pytest.raises(InputError, match=rf"cams.txt:{2 if 'duplicate' not in message else 3}: .*{message}"):
        read_sources(listing)


def test_cli_rejects_a_bad_line_before_any_stream_starts(clips, tmp_path):
    listing = tmp_path / "cams.txt"
    listing.write_text(f"{clips[0]} a\n{clips[1]} a\n")
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "lowres_sdk.cli", "video", "--sources", str(listing), "--crops", "motion", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and not out.exists()
    assert p.stderr.strip().splitlines() == [p.stderr.strip()] and "cams.txt:2: duplicate stream name 'a'" in p.stderr


def test_each_stream_equals_the_single_stream_pipeline(clips, tmp_path):
    options = ManyOptions(crops=lambda spec: squares_motion())
    summary = process_many(clips, BrightnessClassifier(), tmp_path / "many", options=options)
    assert summary["n_streams"] == 3 and summary["errors"] == {} and summary["finished"]
    for clip in clips:
        single = tmp_path / "single" / clip.stem
        process(clip, BrightnessClassifier(), single, squares_motion(), write_video=False, progress=False)
        assert jsonl(tmp_path / "many" / clip.stem / "detections.jsonl") == jsonl(single / "detections.jsonl")
        assert summary["streams"][clip.stem]["frames_processed"] == 40
    assert json.loads((tmp_path / "many" / "summary.json").read_text())["frames_processed"] == 120


class WidthProvider:
    """One box per frame whose width says which stream it came from."""

    def __init__(self, width):
        self.width = width

    def __call__(self, frame, index):
        return np.array([[0, 0, self.width, 20]])


class RecordingClassifier(BrightnessClassifier):
    def __init__(self):
        super().__init__()
        self.widths = []

    def __call__(self, crops):
        self.widths.append({c.shape[1] for c in crops})
        return super().__call__(crops)


def test_crops_of_several_streams_share_a_model_call(clips):
    clf = RecordingClassifier()
    widths = {clip.stem: 10 + k for k, clip in enumerate(clips)}
    options = ManyOptions(crops=lambda spec: WidthProvider(widths[spec.name]), max_wait_ms=50.0, track=False)
    summary = process_many(clips, clf, options=options)
    assert sum(s["crops_classified"] for s in summary["streams"].values()) == clf.crops == 120
    assert max(len(w) for w in clf.widths) >= 2  # one call held crops of two streams or more
    assert summary["model_calls"] == clf.calls < 120


def test_fps_rates_frames_in_source_time_and_grabs_the_rest(clips, tmp_path):
    summary = process_many([clips[0]], BrightnessClassifier(), tmp_path, fps=4,
                           options=ManyOptions(crops=lambda spec: FullFrame()))
    s = summary["streams"][clips[0].stem]
    frames = [line["frame"] for line in jsonl(tmp_path / clips[0].stem / "detections.jsonl")]
    # a 10 fps clip at 4 frames a second: frame i is due when floor(i / 10 * 4) moves on
    assert frames == [i for i in range(40) if i == 0 or (4 * i) // 10 > (4 * (i - 1)) // 10]
    assert (s["frames_processed"], s["frames_skipped"], s["frames_dropped"]) == (16, 24, 0)


class FailsAt:
    def __init__(self, index):
        self.index, self.inner = index, FullFrame()

    def __call__(self, frame, index):
        if index == self.index:
            raise RuntimeError("detector crashed")
        return self.inner(frame, index)


def test_a_failing_stream_does_not_stop_the_others(clips, tmp_path):
    crops = {clips[0].stem: FailsAt(10)}
    options = ManyOptions(crops=lambda spec: crops.get(spec.name, FullFrame()))
    summary = process_many(clips, BrightnessClassifier(), tmp_path, options=options)
    bad = summary["streams"][clips[0].stem]
    assert bad["error"] == "RuntimeError: detector crashed" and not bad["finished"] and bad["frames_processed"] == 10
    assert [s["frames_processed"] for s in summary["streams"].values()][1:] == [40, 40]
    assert list(summary["errors"]) == [clips[0].stem]
    assert len(jsonl(tmp_path / clips[0].stem / "detections.jsonl")) == 10  # what it did is kept


class Slow:
    def __init__(self, seconds):
        self.seconds, self.inner = seconds, FullFrame()

    def __call__(self, frame, index):
        time.sleep(self.seconds)
        return self.inner(frame, index)


def test_a_realtime_stream_behind_drops_and_a_file_never_does(clips):
    options = ManyOptions(crops=lambda spec: Slow(0.15), max_lag=0.2)  # 10 fps clips, 6.7 frames/s of work
    live = StreamSpec(str(clips[0]), "live", realtime=True, max_frames=20)
    summary = process_many([live, StreamSpec(str(clips[1]), "file", max_frames=20)], BrightnessClassifier(),
                           options=options)
    live, file = summary["streams"]["live"], summary["streams"]["file"]
    assert live["frames_dropped"] > 0 and live["frames_processed"] == 20
    assert live["frames_processed"] + live["frames_dropped"] <= live["frames_read"] + live["frames_skipped"]
    assert (file["frames_dropped"], file["frames_skipped"], file["frames_processed"]) == (0, 0, 20)
    assert live["latency_ms"]["p95"] < 1000


def test_a_resumed_stream_writes_every_frame_once(clips, tmp_path):
    spec, options = specs_from([clips[2]])[0], ManyOptions(crops=lambda spec: squares_motion())
    whole = StreamRunner(spec, BrightnessClassifier(), tmp_path / "whole", options).run()
    lines = (tmp_path / "whole" / "detections.jsonl").read_text().splitlines(keepends=True)
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / "detections.jsonl").write_text("".join(lines[:25]) + lines[25][:7])  # killed mid-line
    resumed = StreamRunner(spec, BrightnessClassifier(), torn, options, resume=True).run()
    assert jsonl(torn / "detections.jsonl") == jsonl(tmp_path / "whole" / "detections.jsonl")
    assert resumed["frames_processed"] == whole["frames_processed"] == 40


def test_cli_runs_several_sources(clips, tmp_path):
    out = tmp_path / "out"
    video = [sys.executable, "-m", "lowres_sdk.cli", "video", str(clips[0]), str(clips[1]), "--crops", "motion", "--fps", "5",
             "--out", str(out), "--no-video"]
    p = subprocess.run(video, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_streams"] == 2 and summary["frames_processed"] == 40
    again = subprocess.run(video, capture_output=True, text=True, timeout=300)  # an earlier run's outputs: refused
    assert again.returncode == 1 and "pass --overwrite" in again.stderr
    assert json.loads((out / "summary.json").read_text()) == summary
    replaced = subprocess.run([*video, "--overwrite", "--json"], capture_output=True, text=True, timeout=300)
    assert replaced.returncode == 0 and json.loads(replaced.stdout)["frames_processed"] == 40
    for clip in clips[:2]:
        assert len(jsonl(out / clip.stem / "detections.jsonl")) == 20
        assert json.loads((out / clip.stem / "summary.json").read_text())["fps_wanted"] == 5


# Live RTSP streams: GStreamer's RTSP server (tests/rtsp_server.py, run by the system python3) serves
# the given 720p H.264 clip on 127.0.0.1, started and stopped by pid.
SYSTEM_PYTHON = "/usr/bin/python3"
HIGHWAY = SHARED_DATA / "video" / "highway-cars-1280x720.mp4"


def _rtsp_missing() -> str | None:
    if not HIGHWAY.is_file():
        return f"{HIGHWAY} is absent"
    if not os.path.exists(SYSTEM_PYTHON):
        return f"no {SYSTEM_PYTHON} to run GStreamer's RTSP server"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                            "from gi.repository import GstRtspServer"], capture_output=True)
    if probe.returncode:
        return ("GStreamer's RTSP server is not installed (apt-get install gir1.2-gst-rtsp-server-1.0 "
                "gstreamer1.0-rtsp gstreamer1.0-plugins-good gstreamer1.0-plugins-bad python3-gi)")
    return None


rtsp = pytest.mark.skipif(_rtsp_missing() is not None, reason=str(_rtsp_missing()))


class RtspServer:
    """tests/rtsp_server.py on a free port of 127.0.0.1, serving the highway clip at each of ``names``."""

    def __init__(self, names):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.names, self.proc = names, None

    def start(self) -> "RtspServer":
        script = Path(__file__).with_name("rtsp_server.py")
        mounts = [f"{n}={HIGHWAY}" for n in self.names]
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(script), str(self.port), *mounts], stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout.readline().strip() == "ready"
        return self

    def url(self, name) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{name}"

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def servers():
    started = []
    yield lambda names: started.append(RtspServer(names).start()) or started[-1]
    for server in started:
        if server.proc.poll() is None:
            server.kill()


LIVE = ManyOptions(crops=lambda spec: FullFrame(), timeout=5.0)


@rtsp
def test_several_rtsp_streams_at_once(servers):
    server = servers(["cam1", "cam2", "cam3"])
    names = ["cam1", "cam2", "cam3"]
    summary = process_many([server.url(n) for n in names], BrightnessClassifier(), fps=5, max_frames=10, options=LIVE)
    assert summary["errors"] == {} and summary["finished"]
    for name in names:
        s = summary["streams"][name]
        assert (s["source_kind"], s["width"], s["height"], s["frames_processed"]) == ("stream", 1280, 720, 10)
        assert s["latency_ms"]["p95"] < 1000


@rtsp
def test_an_rtsp_server_restart_reconnects_and_counts_the_lost_frames(servers):
    server = servers(["cam1"])
    seen = []

    def restart_after_five(name, result):
        seen.append(result.index)
        if len(seen) == 5:
            server.kill()
            time.sleep(1.0)
            server.start()

    summary = process_many([server.url("cam1")], BrightnessClassifier(), fps=5, max_frames=12, options=LIVE,
                           callback=restart_after_five)
    s = summary["streams"]["cam1"]
    assert s["error"] is None and s["frames_processed"] == 12 and s["reconnects"] >= 1
    assert s["frames_dropped"] >= 3  # at 5 frames a second, the second and more it was away


@rtsp
def test_a_stream_whose_server_is_gone_fails_alone(servers):
    keeps, goes = servers(["cam1"]), servers(["cam2"])

    def kill_cam2(name, result):
        if name == "cam2" and result.index > 0 and goes.proc.poll() is None:
            goes.kill()

    options = ManyOptions(crops=lambda spec: FullFrame(), timeout=2.0, reconnects=1)
    summary = process_many([keeps.url("cam1"), goes.url("cam2")], BrightnessClassifier(), fps=5, max_frames=15,
                           options=options, callback=kill_cam2)
    assert summary["streams"]["cam1"]["frames_processed"] == 15 and summary["streams"]["cam1"]["error"] is None
    assert "the stream was lost" in summary["errors"]["cam2"] and summary["streams"]["cam2"]["frames_processed"] < 15
