"""The Triton repository's onnxruntime model (`lowres_classify_onnx`: the bundle's model.onnx and its
config.pbtxt, unchanged) served by a real tritonserver, the one nvidia-pytriton ships. That server
has no onnxruntime backend, so a Python-based stand-in of that name runs the graph
(triton_onnxruntime_standin.py): this checks the config against the graph, the batch dimension and
the answers over HTTP, not NVIDIA's backend itself."""
from pathlib import Path

import numpy as np
import pytest

from lowres_sdk import Classifier
from lowres_sdk.export.triton import write_triton_repo

from test_triton import serving

MODEL = "lowres_classify_onnx"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return write_triton_repo(None, tmp_path_factory.mktemp("triton") / "repo", max_batch=16)


@pytest.fixture(scope="module")
def onnx_server(repo, tmp_path_factory):
    standin = Path(__file__).with_name("triton_onnxruntime_standin.py")
    with serving(repo, tmp_path_factory.mktemp("triton-onnx"), MODEL, {"onnxruntime": standin}) as client:
        yield client


def _probs(client, crops: np.ndarray) -> np.ndarray:
    import tritonclient.http as http

    inp = http.InferInput("images", list(crops.shape), "UINT8")
    inp.set_data_from_numpy(crops)
    return client.infer(MODEL, [inp], outputs=[http.InferRequestedOutput("probs")]).as_numpy("probs")


def test_onnx_model_served_by_tritonserver_answers_like_classifier(onnx_server):
    meta = onnx_server.get_model_metadata(MODEL)
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [("images", "UINT8", [-1, -1, -1, 3])]
    clf = Classifier()
    outputs = [(t["name"], t["datatype"], t["shape"]) for t in meta["outputs"]]
    assert outputs == [("probs", "FP32", [-1, len(clf.labels)])]
    rng = np.random.default_rng(0)
    for n, h, w in ((1, 16, 16), (5, 24, 10), (16, 9, 31)):  # one request per crop size, up to max_batch_size
        crops = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
        probs = _probs(onnx_server, crops)
        assert probs.shape == (n, len(clf.labels)) and np.abs(probs - clf(list(crops)).probs).max() <= 1e-5


def test_a_config_that_misnames_the_graph_s_output_does_not_load(repo, tmp_path):
    import shutil

    bad = tmp_path / "repo"
    shutil.copytree(repo / MODEL, bad / MODEL)
    config = bad / MODEL / "config.pbtxt"
    config.write_text(config.read_text().replace('name: "probs"', 'name: "scores"'))
    standin = Path(__file__).with_name("triton_onnxruntime_standin.py")
    with pytest.raises(pytest.fail.Exception, match="are not the graph's"):
        with serving(bad, tmp_path / "work", MODEL, {"onnxruntime": standin}):
            pass
