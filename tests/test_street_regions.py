"""The COCO region stage (YOLOX-Nano through onnxruntime) and the street stage that joins it with the
project's own detector: whole people on a real frame, typed errors, and the merge of two stages."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from lowres_sdk import BundleError, InputError
from lowres_sdk.video.coco import DEFAULT_MODEL, CocoRegions
from lowres_sdk.video.combined import CombinedRegions
from lowres_sdk.video.regions import parse_crops

CLIP = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "video" / "pedestrians-480x360.avi"


def test_coco_finds_whole_people_on_the_pedestrian_clip():
    if not CLIP.is_file():
        pytest.skip(f"needs the given pedestrian clip at {CLIP}")
    cap = cv2.VideoCapture(str(CLIP))
    for _ in range(100):
        ok, frame = cap.read()
    assert ok
    coco = CocoRegions()
    boxes = coco(frame, 0)
    assert boxes.shape[1] == 4 and coco.last_categories.shape == (len(boxes), 2)
    people = boxes[coco.last_categories.argmax(1) == 0]
    assert len(people) >= 5  # the walkway holds about ten people at frame 100
    assert (people[:, 3] > people[:, 2]).mean() > 0.8  # upright, whole: taller than wide
    assert (boxes[:, :2] >= 0).all()
    assert (boxes[:, 0] + boxes[:, 2] <= 480).all() and (boxes[:, 1] + boxes[:, 3] <= 360).all()


def test_coco_finds_nothing_in_a_flat_frame():
    coco = CocoRegions()
    assert coco(np.full((240, 320, 3), 90, np.uint8), 0).shape == (0, 4)
    assert coco.last_categories.shape == (0, 2)


def test_coco_refuses_a_missing_model_a_bad_file_and_a_bad_threshold(tmp_path):
    with pytest.raises(InputError, match="not found"):
        CocoRegions(tmp_path / "none.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(BundleError, match="not a loadable ONNX"):
        CocoRegions(bad)
    with pytest.raises(InputError, match="threshold"):
        CocoRegions(threshold=1.5)
    from lowres_sdk.video.detector import DEFAULT_MODEL as OWN

    with pytest.raises(BundleError, match="not a YOLOX COCO detector"):
        CocoRegions(OWN)  # an ONNX model, but another contract


def test_the_shipped_model_keeps_half_precision_weights():
    onnx = pytest.importorskip("onnx")
    assert DEFAULT_MODEL.stat().st_size < 2_000_000
    model = onnx.load(str(DEFAULT_MODEL))
    big = [i for i in model.graph.initializer if np.prod(i.dims) >= 16]
    assert big and all(i.data_type == onnx.TensorProto.FLOAT16 for i in big)


class _Stage:
    categories = ("person", "vehicle")

    def __init__(self, boxes, scores, tracker_defaults=None):
        self.boxes, self.scores = np.array(boxes), np.array(scores, np.float32)
        self.tracker_defaults = tracker_defaults or {}

    def __call__(self, frame, index):
        self.last_categories = self.scores
        return self.boxes


def test_combined_takes_each_stage_categories_and_keeps_a_box_found_twice_once():
    people_and_cars = _Stage([[0, 0, 10, 30], [50, 50, 40, 20]], [[0.9, 0.1], [0.1, 0.8]], {"min_hits": 2})
    cars = _Stage([[52, 51, 40, 20], [100, 0, 30, 15], [0, 0, 10, 30]], [[0.1, 0.6], [0.2, 0.7], [0.5, 0.4]])
    combined = CombinedRegions([(people_and_cars, {"person": None, "vehicle": None}), (cars, {"vehicle": None})])
    boxes = combined(np.zeros((200, 200, 3), np.uint8), 0)
    found = {tuple(b): int(c) for b, c in zip(boxes.tolist(), combined.last_categories.argmax(1))}
    # the second stage's person box is not its to give; its copy of the first car is one car
    assert found == {(0, 0, 10, 30): 0, (50, 50, 40, 20): 1, (100, 0, 30, 15): 1}
    assert combined.tracker_defaults == {"min_hits": 2, "by_category": True}
    car = [tuple(b) for b in boxes.tolist()].index((100, 0, 30, 15))
    assert combined.last_categories[car].tolist() == pytest.approx([0.0, 0.7])  # naming cannot make it a person


def test_combined_takes_a_category_from_a_stage_only_below_its_height():
    big = _Stage([[0, 0, 20, 90]], [[0.9, 0.1]])
    small_people = _Stage([[100, 0, 10, 30], [150, 0, 20, 60], [5, 5, 15, 80]], [[0.8, 0.1], [0.7, 0.2], [0.6, 0.1]])
    combined = CombinedRegions([(big, {"person": None, "vehicle": None}), (small_people, {"person": 0.2})])
    boxes = combined(np.zeros((100, 200, 3), np.uint8), 0)  # 0.2 of the longer side: under 40 px tall
    assert boxes.tolist() == [[0, 0, 20, 90], [100, 0, 10, 30]]  # 60 px too tall; the 80 px one overlaps too


def test_combined_refuses_stages_with_other_categories():
    other = _Stage([], [])
    other.categories = ("face",)
    with pytest.raises(InputError, match="share their categories"):
        CombinedRegions([(_Stage([], []), {"person": None}), (other, {"face": None})])


def test_parse_crops_builds_the_street_and_coco_stages(tmp_path):
    street = parse_crops("street")
    assert isinstance(street, CombinedRegions) and street.categories == ("person", "vehicle")
    assert street.tracker_defaults["gate"] > 0
    assert isinstance(parse_crops("coco"), CocoRegions)
    with pytest.raises(InputError, match="not found"):
        parse_crops(f"coco:{tmp_path / 'none.onnx'}")
    with pytest.raises(InputError, match="street"):
        parse_crops("nonsense")
