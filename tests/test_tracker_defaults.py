"""The tracker settings come from the region stage wherever it runs: `run` / `process` in Python, one
stream, and each stream of a many-stream run (whose own ``crops=`` may differ from the command line's);
settings a user gives override only themselves."""
import numpy as np
import pytest
from conftest import write_flat_clip

from lowres_sdk.video.detector import TRACKER_DEFAULTS, DetectorRegions
from lowres_sdk.video.many import ManyOptions, StreamRunner
from lowres_sdk.video.regions import MotionCrops
from lowres_sdk.video.sources import StreamSpec
from lowres_sdk.video.tracking import TrackerConfig, tracker_for


class _Stage:
    tracker_defaults = {"min_hits": 2, "gate": 2.0, "static_categories": (1,)}

    def __call__(self, frame, index):
        return np.zeros((0, 4), np.int64)


class _Nobody:
    labels = ["person", "car"]

    def __call__(self, crops):
        return np.zeros((len(crops), 2))


def test_tracker_for_takes_the_stage_settings_then_the_overrides():
    assert tracker_for(MotionCrops()) == TrackerConfig()
    config = tracker_for(_Stage(), min_hits=5)
    assert (config.min_hits, config.gate, config.static_categories, config.min_travel) == (5, 2.0, (1,), 0.1)


def test_run_without_a_tracker_uses_the_stage_settings(tmp_path):
    from lowres_sdk.video import run

    path = write_flat_clip(tmp_path / "blank.avi", 2, (64, 48))
    with run(path, _Nobody(), _Stage(), threads=False) as results:
        assert (results.config.min_hits, results.config.gate) == (2, 2.0)
    with run(path, _Nobody(), _Stage(), tracker=TrackerConfig(min_hits=4), threads=False) as results:
        assert (results.config.min_hits, results.config.gate) == (4, 0.0)  # a whole config given: taken as it is


@pytest.mark.parametrize("crops, gate", [("detector", TRACKER_DEFAULTS["gate"]), ("motion", 0.0)])
def test_each_stream_gets_its_own_stage_settings_under_the_overrides(tmp_path, crops, gate):
    spec = StreamSpec(source=str(tmp_path / "x.mp4"), name="x", crops=crops)
    runner = StreamRunner(spec, _Nobody(), None, ManyOptions(tracker_overrides={"min_travel": 0.3}))
    assert isinstance(runner.provider, DetectorRegions if crops == "detector" else MotionCrops)
    assert (runner.tracker.gate, runner.tracker.min_travel) == (gate, 0.3)
    assert runner.tracker.min_hits == (TRACKER_DEFAULTS["min_hits"] if crops == "detector" else TrackerConfig().min_hits)
