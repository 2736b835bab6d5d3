"""Crops mined from a clip's moving objects (training/clipmine.py) on the real pedestrian clip."""
import numpy as np
import pytest

from lowres_sdk.errors import DataError
from lowres_sdk.training.clipmine import background, mine
from lowres_sdk.training.fixedcam import clip_frames

from conftest import SHARED_DATA

PEDESTRIANS = SHARED_DATA / "video" / "pedestrians-480x360.avi"
pytestmark = pytest.mark.skipif(not PEDESTRIANS.is_file(), reason=f"pedestrian clip not found at {PEDESTRIANS}")


def test_mined_crops_are_tracked_objects_from_the_training_frames_only():
    crops, info = mine(PEDESTRIANS, 0, 120, min_hits=5, per_track=4)
    assert info["frames"] == [0, 120] and info["tracks"] >= 3
    assert len(crops) == info["crops"] and info["crops"] <= 4 * info["tracks"]
    assert all(c.dtype == np.uint8 and c.ndim == 3 and c.shape[2] == 3 and min(c.shape[:2]) >= 8 for c in crops)
    people = np.array([c.shape[0] / c.shape[1] for c in crops])
    assert np.median(people) > 1.2  # walkers: taller than wide
    later, _ = mine(PEDESTRIANS, 60, 120, min_hits=5, per_track=4)
    assert len(later) < len(crops)  # frames before `first` only feed the background model
    assert clip_frames(PEDESTRIANS) == (397, 795)


def test_bad_frame_range_is_refused():
    with pytest.raises(DataError, match="first < last"):
        mine(PEDESTRIANS, 50, 50)


def test_background_crops_avoid_moving_objects():
    from lowres_sdk.video.regions import MotionCrops
    from lowres_sdk.video import frames

    crops, info = background(PEDESTRIANS, 40, 120, count=40, every=8, seed=3)
    assert info["frames"] == [40, 120] and 40 <= len(crops) == info["crops"] == len(info["boxes"]) <= 50
    assert all(c.dtype == np.uint8 and c.shape[2] == 3 and max(c.shape[:2]) <= 64 for c in crops)
    again, _ = background(PEDESTRIANS, 40, 120, count=40, every=8, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(crops, again))  # seeded
    detector, moving = MotionCrops(), {}
    for f in frames(PEDESTRIANS):
        if f.index >= 120:
            break
        moving[f.index] = detector(f.image, f.index)
    assert sum(len(moving[i]) for i, *_ in info["boxes"]) > 0  # people do walk in the sampled frames
    for i, x, y, w, h in info["boxes"]:
        assert 40 <= i < 120 and (i - 40) % 8 == 0
        for mx, my, mw, mh in moving[i]:
            assert x >= mx + mw or mx >= x + w or y >= my + mh or my >= y + h, (i, (x, y, w, h), (mx, my, mw, mh))
    with pytest.raises(DataError, match="first < last"):
        background(PEDESTRIANS, 10, 5)
