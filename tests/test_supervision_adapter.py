"""The supervision adapter (sdk/supervision_adapter.py), tested where supervision is installed."""
from __future__ import annotations

import numpy as np
import pytest

sv = pytest.importorskip("supervision", reason="the adapter is optional: pip install supervision")

from lowres_sdk import Classifier  # noqa: E402
from lowres_sdk.supervision_adapter import classifications, classify_detections, frame_detections  # noqa: E402
from lowres_sdk.video.pipeline import Detection, FrameResult  # noqa: E402

from tiny_bundles import make_bundle  # noqa: E402


@pytest.fixture(scope="module")
def clf(tmp_path_factory):
    return Classifier(make_bundle(tmp_path_factory.mktemp("sv") / "b",
                                  calibration={"temperature": 1.0, "unknown_below": 0.5}))


def test_frame_objects_become_xyxy_detections_with_track_ids():
    image = np.zeros((40, 60, 3), np.uint8)
    dets = [Detection((5, 6, 10, 20), 3, "red", 0.9, True, "object", "red", 2),
            Detection((30, 2, 8, 8), 4, "unknown", 0.4, True, "object", "blue", 0),
            Detection((1, 1, 4, 4), 5, "red", 0.9, True, "tentative", "red", 2)]
    d = frame_detections(FrameResult(0, 0.0, image, dets))
    assert len(d) == 2 and d.xyxy.tolist() == [[5, 6, 15, 26], [30, 2, 38, 10]]
    assert d.tracker_id.tolist() == [3, 4] and d.class_id.tolist() == [2, 0]
    assert d.data["class_name"].tolist() == ["red", "unknown"] and d.data["known"].tolist() == [True, False]
    assert len(frame_detections(FrameResult(0, 0.0, image, dets), reported_only=False)) == 3
    assert len(frame_detections(FrameResult(0, 0.0, image, []))) == 0


def test_a_detectors_boxes_classified(clf):
    image = np.full((30, 40, 3), 128, np.uint8)
    image[0:10, 0:10] = (0, 0, 255)   # red
    image[10:20, 20:30] = (255, 0, 0)  # blue
    boxes = sv.Detections(xyxy=np.array([[0, 0, 10, 10], [20, 10, 30, 20], [35, 25, 35, 29], [0, 20, 8, 30]], float))
    out = classify_detections(clf, image, boxes)
    assert out.data["class_name"].tolist() == ["red", "blue", "", "unknown"]  # an empty box; a gray crop
    assert out.class_id.tolist()[:3] == [2, 0, -1] and out.confidence[2] == 0
    assert out.data["known"].tolist() == [True, True, False, False]


def test_predictions_as_classifications(clf):
    red = np.zeros((8, 8, 3), np.uint8)
    red[:, :, 2] = 255
    (c,) = classifications(clf(red))
    assert c.class_id.tolist() == [0, 1, 2] and int(c.class_id[np.argmax(c.confidence)]) == 2
