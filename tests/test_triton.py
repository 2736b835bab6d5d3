"""`lowres export BUNDLE --triton REPO`: the repository's configs parse as Triton model configs, and
a real tritonserver (the one inside the nvidia-pytriton wheel) loads the python-backend model over
loopback and answers like Classifier.

The python backend stub in nvidia-pytriton 0.7 is built against numpy 1.x (pybind11 reads numpy's
C structs), and under numpy 2 it hands the model garbage bytes. Where this environment has numpy 2,
the test needs a folder holding numpy<2 for the stub, named by LOWRES_TRITON_NUMPY1
(`pip install --target DIR 'numpy<2'`), and skips with that reason otherwise.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import shutil
import site
import socket
import subprocess
import sys
import sysconfig
import time
import venv
from pathlib import Path

import cv2
import numpy as np
import pytest

from lowres_sdk import Classifier, ExportError, load_bundle
from lowres_sdk.cli import main
from lowres_sdk.export.triton import write_triton_repo


def model_config_pb2():
    """tritonclient's ModelConfig protobuf, loaded from its file: the tritonclient.grpc package
    itself needs grpcio, which the http extra does not install."""
    pytest.importorskip("google.protobuf")
    spec = importlib.util.find_spec("tritonclient")
    if spec is None:
        pytest.skip("tritonclient is not installed (pip install 'lowres_sdk[triton]')")
    path = Path(spec.submodule_search_locations[0]) / "grpc" / "model_config_pb2.py"
    mod_spec = importlib.util.spec_from_file_location("lowres_test_model_config_pb2", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


def parse_config(path: Path):
    from google.protobuf import text_format

    return text_format.Parse(path.read_text(), model_config_pb2().ModelConfig())


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return write_triton_repo(None, tmp_path_factory.mktemp("triton") / "repo", max_batch=16, delay_us=300)


def test_repository_configs_parse_as_triton_model_configs(repo):
    pb = model_config_pb2()
    clf = Classifier()
    onnx = parse_config(repo / "lowres_classify_onnx" / "config.pbtxt")
    assert onnx.name == "lowres_classify_onnx" and onnx.backend == "onnxruntime" and onnx.max_batch_size == 16
    (inp,), (out,) = onnx.input, onnx.output
    assert (inp.name, inp.data_type, list(inp.dims)) == ("images", pb.TYPE_UINT8, [-1, -1, 3])
    assert out.data_type == pb.TYPE_FP32 and list(out.dims) == [len(clf.labels)] and out.label_filename == "labels.txt"
    assert onnx.dynamic_batching.max_queue_delay_microseconds == 300
    assert onnx.instance_group[0].kind == pb.ModelInstanceGroup.KIND_AUTO and onnx.instance_group[0].count == 1
    assert (repo / "lowres_classify_onnx" / "1" / "model.onnx").read_bytes() == clf.bundle.file().read_bytes()
    py = parse_config(repo / "lowres_classify" / "config.pbtxt")
    assert py.backend == "python" and py.input[0].data_type == pb.TYPE_STRING and list(py.input[0].dims) == [1]
    assert [(o.name, list(o.dims)) for o in py.output] == [("PROBS", [len(clf.labels)]), ("LABEL", [1])]
    assert py.parameters["max_pixels"].string_value == str(1 << 20)
    for model in ("lowres_classify", "lowres_classify_onnx"):
        assert (repo / model / "labels.txt").read_text().splitlines() == clf.labels
    assert load_bundle(repo / "lowres_classify" / "1" / "bundle").fingerprint == clf.bundle.fingerprint
    readme = (repo / "README.md").read_text()
    assert "lowres_classify_onnx" in readme and "equal H x W" in readme


def test_repository_replaces_its_own_folder_but_not_a_users(repo, tmp_path):
    write_triton_repo(None, repo, max_batch=8)
    assert "max_batch_size: 8" in (repo / "lowres_classify" / "config.pbtxt").read_text()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(ExportError, match="not a Triton repository"):
        write_triton_repo(None, mine)
    assert (mine / "notes.txt").read_text() == "keep"


def test_cli_export_bundle_with_triton(tmp_path, capsys):
    main(["export", str(Classifier().bundle.path), "--triton", str(tmp_path / "r"), "--triton-kind", "gpu"])
    assert "wrote Triton repository" in capsys.readouterr().out
    assert "kind: KIND_GPU" in (tmp_path / "r" / "lowres_classify_onnx" / "config.pbtxt").read_text()
    with pytest.raises(SystemExit) as e:
        main(["export", str(Classifier().bundle.path)])
    assert e.value.code == 2 and "is a bundle: say what to write" in capsys.readouterr().err


# ---- a real tritonserver ----------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stub_python(root: Path) -> Path:
    """A venv whose python3 the python backend stub takes its sys.path from: numpy<2 first, then
    this environment's packages (lowres_sdk, onnxruntime, OpenCV)."""
    first = []
    if int(np.__version__.split(".")[0]) >= 2:
        numpy1 = os.environ.get("LOWRES_TRITON_NUMPY1")
        if not numpy1 or not (Path(numpy1) / "numpy").is_dir():
            pytest.skip("the tritonserver python backend stub in nvidia-pytriton needs numpy<2 and this environment has "
                        f"numpy {np.__version__}: set LOWRES_TRITON_NUMPY1 to a folder made by pip install --target DIR 'numpy<2'")
        first = [numpy1]
    venv.create(root, with_pip=False, symlinks=True)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(root), "platbase": str(root)}))
    lines = first + [f"import site; site.addsitedir({p!r})" for p in site.getsitepackages()]
    (purelib / "00-lowres-triton.pth").write_text("\n".join(lines) + "\n")
    return root / "bin"


@contextlib.contextmanager
def serving(repo: Path, work: Path, model: str, backends: dict[str, Path] | None = None):
    """The tritonserver of nvidia-pytriton on 127.0.0.1 serving ``model`` of ``repo``, as a ready
    tritonclient.http client. ``backends``: Python-based backends (name -> their model.py) beside
    its python backend."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None:
        pytest.skip("nvidia-pytriton (which ships a tritonserver binary) is not installed: pip install --no-deps nvidia-pytriton")
    dist = Path(spec.submodule_search_locations[0]) / "tritonserver"
    stub = dist / "python_backend_stubs" / f"{sys.version_info[0]}.{sys.version_info[1]}" / "triton_python_backend_stub"
    if not stub.is_file():
        pytest.skip(f"nvidia-pytriton has no python backend stub for Python {sys.version_info[0]}.{sys.version_info[1]}")
    pytest.importorskip("tritonclient.http")
    backend = work / "backends" / "python"
    backend.mkdir(parents=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        (backend / name).symlink_to(dist / "backends" / "python" / name)
    shutil.copy(stub, backend / "triton_python_backend_stub")
    for name, model_py in (backends or {}).items():  # each with copies of the python backend's files (not links)
        shutil.copytree(backend, work / "backends" / name)
        shutil.copy(model_py, work / "backends" / name / "model.py")
    env = dict(os.environ)
    env["PATH"] = f"{_stub_python(work / 'stub-env')}:{env['PATH']}"
    libs = [str(Path(spec.submodule_search_locations[0]).parent / "nvidia_pytriton.libs"), sysconfig.get_config_var("LIBDIR")]
    env["LD_LIBRARY_PATH"] = ":".join([*libs, *filter(None, [env.get("LD_LIBRARY_PATH")])])
    port = _free_port()
    log = open(work / "tritonserver.log", "wb")
    proc = subprocess.Popen([str(dist / "bin" / "tritonserver"), f"--model-repository={repo}",
                             f"--backend-directory={work / 'backends'}", "--model-control-mode=explicit",
                             f"--load-model={model}", "--http-address=127.0.0.1", f"--http-port={port}",
                             "--allow-grpc=false", "--allow-metrics=false", "--exit-timeout-secs=10"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    import tritonclient.http as http

    client = http.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("tritonserver did not become ready:\n" + (work / "tritonserver.log").read_text()[-3000:])
            try:
                if client.is_model_ready(model):
                    break
            except Exception:  # noqa: BLE001 -- not listening yet
                pass
            time.sleep(0.2)
        yield client
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def tritonserver(repo, tmp_path_factory):
    with serving(repo, tmp_path_factory.mktemp("tritonserver"), "lowres_classify") as client:
        yield client


def _infer(client, blobs: list[bytes]):
    import tritonclient.http as http

    arr = np.array([[b] for b in blobs], dtype=np.object_)
    inp = http.InferInput("IMAGES", list(arr.shape), "BYTES")
    inp.set_data_from_numpy(arr)
    return client.infer("lowres_classify", [inp], outputs=[http.InferRequestedOutput("PROBS"),
                                                           http.InferRequestedOutput("LABEL")])


def _npy(crop) -> bytes:
    buf = io.BytesIO()
    np.save(buf, crop)
    return buf.getvalue()


def test_real_tritonserver_answers_like_classifier(tritonserver):
    from tritonclient.utils import InferenceServerException

    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(16, 16), (40, 12), (5, 7), (33, 64), (16, 16)]]
    jpg = cv2.imencode(".jpg", crops[3])[1].tobytes()
    blobs = [_npy(crops[0]), _npy(crops[1]), cv2.imencode(".png", crops[2])[1].tobytes(), jpg, _npy(crops[4][:, :, 0])]
    seen = crops[:3] + [cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR), crops[4][:, :, 0]]
    expected = Classifier()(seen)
    result = _infer(tritonserver, blobs)
    probs, labels = result.as_numpy("PROBS"), [v.decode() for v in result.as_numpy("LABEL").ravel()]
    assert labels == expected.labels
    assert probs.shape == expected.probs.shape and np.abs(probs - expected.probs).max() <= 1e-5
    # Bad crops get an error answer (not a crash); the model keeps serving.
    for bad in (b"not an image", jpg[: len(jpg) // 2], _npy(np.zeros((2, 2), np.float32))):
        with pytest.raises(InferenceServerException) as e:
            _infer(tritonserver, [bad])
        assert "400" in str(e.value) or "IMAGES[0]" in str(e.value)
    again = _infer(tritonserver, blobs[:1]).as_numpy("PROBS")
    assert np.abs(again - expected.probs[:1]).max() <= 1e-5
