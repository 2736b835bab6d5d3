"""The one result model (sdk/results.py): `Predictions` as a sequence of `Prediction` records, its
short repr, dict / JSON / pandas forms, empty input, paths and PIL images, and the explicit signature."""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from lowres_sdk import Classifier, InputError
from lowres_sdk.results import RECORD_KEYS, Prediction, Predictions, Scored

from tiny_bundles import make_bundle

RED, GRAY = np.zeros((9, 7, 3), np.uint8), np.full((9, 7, 3), 128, np.uint8)
RED[:, :, 2] = 255


@pytest.fixture(scope="module")
def clf(tmp_path_factory):
    return Classifier(make_bundle(tmp_path_factory.mktemp("results") / "b",
                                  calibration={"temperature": 1.0, "unknown_below": 0.5}))


def test_predictions_index_iterate_and_slice(clf):
    pred = clf([RED, GRAY, RED])
    one = pred[0]
    assert isinstance(one, Prediction) and one.label == "red" and one.known and one.index == 2
    assert one.top_k[0] == Scored("red", pytest.approx(one.score)) and len(one.top_k) == 3
    assert pred[-1] == pred[2] and [p.label for p in pred] == ["red", "unknown", "red"]
    part = pred[1:]
    assert isinstance(part, Predictions) and len(part) == 2 and part.labels == ["unknown", "red"]
    assert part.probs.shape == (2, 3) and part.classes == pred.classes
    with pytest.raises(IndexError):
        pred[3]
    with pytest.raises(InputError):
        pred["a"]


def test_an_unknown_record_names_its_best_class(clf):
    gray = clf(GRAY)[0].to_dict()
    assert tuple(gray)[:len(RECORD_KEYS)] == RECORD_KEYS and set(gray) == {*RECORD_KEYS, "top_k"}
    assert gray["label"] == "unknown" and gray["known"] is False
    assert gray["best"] == clf.labels[gray["index"]] == gray["top_k"][0]["label"]


def test_repr_is_short_whatever_the_batch(clf):
    text = repr(clf([RED] * 500))
    assert len(text) < 120 and "500 crops" in text and "496 more" in text and "[[" not in text


def test_to_json_round_trip_and_to_dict(clf):
    pred = clf([RED, GRAY])
    doc = json.loads(pred.to_json(top_k=2, probs=True))
    assert doc["classes"] == clf.labels and len(doc["results"]) == 2
    assert doc["results"] == pred.to_dict(top_k=2, probs=True)
    back = np.array([r["probs"] for r in doc["results"]], np.float32)
    assert np.abs(back - pred.probs).max() <= 1e-6
    assert [r["label"] for r in doc["results"]] == pred.labels and [len(r["top_k"]) for r in doc["results"]] == [2, 2]
    assert "probs" not in pred.to_dict()[0] and json.loads(pred[0].to_json()) == pred[0].to_dict()


def test_to_pandas(clf):
    pd = pytest.importorskip("pandas", reason="to_pandas needs pandas")
    frame = clf([RED, GRAY]).to_pandas()
    assert isinstance(frame, pd.DataFrame) and list(frame["label"]) == ["red", "unknown"]
    assert list(frame["best"]) == ["red", clf(GRAY).top_k(1).labels[0][0]]
    assert frame[["p_blue", "p_green", "p_red"]].to_numpy().sum(1) == pytest.approx([1, 1], abs=1e-5)


def test_empty_input_gives_an_empty_result(clf):
    for empty in ([], (), np.zeros((0, 8, 8, 3), np.uint8)):
        pred = clf(empty)
        assert len(pred) == 0 and pred.probs.shape == (0, 3) and list(pred) == [] and pred.to_dict() == []
        assert "0 crops" in repr(pred)


def test_paths_and_pil_images_beside_arrays(clf, tmp_path):
    from PIL import Image

    path = tmp_path / "red.png"
    cv2.imwrite(str(path), RED)
    pil = Image.fromarray(np.ascontiguousarray(RED[:, :, ::-1]))  # PIL holds RGB
    pred = clf([path, str(path), pil, RED])
    assert pred.labels == ["red"] * 4 and np.allclose(pred.probs, pred.probs[3], atol=1e-6)
    assert clf(pil.convert("L")).probs.shape == (1, 3)
    with pytest.raises(InputError, match="image not found"):
        clf(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(InputError, match="cannot read image"):
        clf([RED, tmp_path / "notes.txt"])


def test_signature_is_explicit_and_typed():
    params = inspect.signature(Classifier).parameters
    assert {"unknown_below", "providers", "batch_size", "precision", "threads", "backend"} <= set(params)
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values())
    assert "object object" not in str(inspect.signature(Classifier))
    import lowres_sdk

    assert (Path(lowres_sdk.__file__).parent / "py.typed").is_file()


def test_cli_server_and_video_jsonl_print_the_same_record(clf, tmp_path):
    import subprocess
    import sys

    pytest.importorskip("fastapi", reason="the server needs the serve extra")
    pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
    from fastapi.testclient import TestClient

    from lowres_sdk.serve import create_app
    from lowres_sdk.video import process
    from test_video import make_clip, squares_motion

    path = tmp_path / "red.png"
    cv2.imwrite(str(path), RED)
    p = subprocess.run([sys.executable, "-m", "lowres_sdk.cli", "classify", str(path), "--bundle", str(clf.bundle.path),
                        "--json", "--probs", "--top-k", "2"], capture_output=True, text=True, timeout=120)
    cli_record = json.loads(p.stdout)
    assert cli_record.pop("image") == str(path)
    with TestClient(create_app(clf)) as client:
        served = client.post("/v1/classify", content=path.read_bytes(), headers={"Content-Type": "image/png"},
                             params={"top_k": 2}).json()["results"][0]
    assert cli_record == served == clf(path).to_dict(top_k=2, probs=True)[0]
    make_clip(tmp_path / "clip.avi", n=40)
    process(tmp_path / "clip.avi", clf, tmp_path / "out", squares_motion(), progress=False, write_video=False)
    rows = [json.loads(line) for line in (tmp_path / "out" / "detections.jsonl").read_text().splitlines()]
    objects = [o for r in rows for key in ("objects", "tentative", "background") for o in r[key]]
    assert objects and all(list(o)[3:3 + len(RECORD_KEYS)] == list(RECORD_KEYS) for o in objects)
    assert all(list(o)[:3] == ["box", "xyxy", "track"] for o in objects)


def test_inspect_json_is_the_verified_description(clf):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "lowres_sdk.cli", "inspect", str(clf.bundle.path), "--json"],
                       capture_output=True, text=True, timeout=120)
    doc = json.loads(p.stdout)
    assert p.returncode == 0 and doc["verified"] is True and doc["models"] == {"fp32": "model.onnx"}
    assert doc["description"]["labels"] == clf.labels == ["blue", "green", "red"]
