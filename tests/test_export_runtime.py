"""Export -> bundle -> runtime: parity, verification, INT8 gate, torch-free runtime, bad input, CLI."""
import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from lowres_sdk import BundleError, Classifier, Embedder, ExportError, InputError, load_bundle
from lowres_sdk.export import exporter
from lowres_sdk.export.exporter import export_run
from lowres_sdk.export.graph import FusedModel
from lowres_sdk.export.onnx_export import parity, random_crops
from lowres_sdk.training.checkpoint import load_model
from lowres_sdk.training.loop import train

from conftest import tiny_recipe

QUIET = dict(log=lambda *a: None)


@pytest.fixture
def run(tiny_run):
    return tiny_run


@pytest.fixture
def bundle(tiny_bundle):
    return tiny_bundle


def mixed_crops(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(16, 16), (40, 12), (16, 16), (5, 7), (64, 64)]]


def test_bundle_contents(bundle, tiny_data):
    m = bundle.meta
    assert m["schema_version"] == 1 and m["task"] == "classify"
    assert m["labels"] == ["blob", "hstripes", "vstripes"]
    assert m["input"] == {"name": "images", "dtype": "uint8", "layout": "NHWC", "channel_order": "BGR",
                          "batch": "dynamic", "height": "any", "width": "any"}
    assert (m["preprocessing"]["resolution"], m["preprocessing"]["size"]) == (8, 16)
    assert m["parity"]["max_abs_diff"] <= 1e-4 and m["parity"]["crops"] > 20
    # The stored metric is what the runtime measures on the same held-out crops shrunk to 8 px.
    from lowres_sdk.training.data import read_image_folder

    test = read_image_folder(tiny_data / "test", 16, classes=m["labels"])
    pred = Classifier(bundle)(list(exporter.camera_crops(test.images, 8)))
    assert m["metrics"]["top1_at_8px"] == round(100 * float(np.mean(pred.indices == test.labels)), 2)
    assert set(m["files"]) == {"model.onnx"} and len(m["files"]["model.onnx"]["sha256"]) == 64
    assert m["provenance"]["opset"] == 18 and m["provenance"]["recipe"]["resolution"] == 8


def test_runtime_equals_torch_on_mixed_sizes_in_order(bundle, run):
    backbone, spec, _ = load_model(run)
    fused = FusedModel(backbone, spec)
    crops = mixed_crops()
    pred = Classifier(bundle.path, batch_size=2)(crops)
    with torch.no_grad():
        expected = np.concatenate([fused(torch.from_numpy(c[None])).numpy() for c in crops])
    assert pred.probs.shape == (5, 3) and pred.probs.dtype == np.float32
    assert np.abs(pred.probs - expected).max() < 1e-4
    assert pred.indices.dtype == np.int64 and list(pred.indices) == list(expected.argmax(1))
    assert pred.labels == [bundle.labels[i] for i in pred.indices]
    assert np.allclose(pred.scores, expected.max(1), atol=1e-4)
    idx, names, scores = pred.top_k(2)
    assert idx.shape == (5, 2) and (scores[:, 0] >= scores[:, 1]).all() and names[0][0] == pred.labels[0]
    one = Classifier(bundle.path)(crops[1])  # a single array works too
    assert np.abs(one.probs[0] - pred.probs[1]).max() < 1e-6


def test_embedder_gives_unit_vectors(run, tmp_path):
    b = export_run(run, tmp_path / "emb", task="embed", eval_per_class=4, **QUIET)
    e = Embedder(b.path)(mixed_crops())
    assert e.shape == (5, b.meta["embedding_dim"]) and e.dtype == np.float32
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    with pytest.raises(BundleError, match="'embed' bundle"):
        Classifier(b.path)


def test_export_options_are_one_object_checked_before_any_work(run, tmp_path):
    from lowres_sdk.export.exporter import ExportOptions

    for bad, message in [(dict(task="embed", int8=True), "--int8 is gated on classification"),
                         (dict(task="embed", calibration={}), "calibration applies to classify"),
                         (dict(task="detect"), "task must be one of classify, embed"),
                         (dict(eval_per_class=0), "eval_per_class and calib_per_class must be >= 1")]:
        with pytest.raises(ExportError, match=message):
            ExportOptions(**bad)
        with pytest.raises(ExportError, match=message):  # the keyword form is checked by the same object
            export_run(run, tmp_path / "never", **bad, **QUIET)
        assert not (tmp_path / "never").exists()
    options = ExportOptions(task="embed", eval_per_class=4)
    b = export_run(run, tmp_path / "emb", options, **QUIET)
    assert b.task == "embed" and b.meta["metrics"]["test_images"] == 12  # 4 per class of the 3 tiny classes
    c = export_run(run, tmp_path / "clf", options, task="classify", **QUIET)  # settings apply on top of options
    assert c.task == "classify" and options.task == "embed"


def test_letterbox_bundle_keeps_parity_on_tall_and_wide_crops(tiny_data, tmp_path):
    path = tmp_path / "lb"
    train(tiny_recipe(tiny_data, epochs=1, resolution=16, input_mode="native", fit="letterbox"), path, progress=False)
    b = export_run(path, tmp_path / "lb_bundle", eval_per_class=4, **QUIET)
    assert b.meta["preprocessing"]["fit"] == "letterbox"
    assert b.meta["parity"]["max_abs_diff"] <= 1e-4 and [128, 48] in b.meta["parity"]["shapes"]
    backbone, spec, _ = load_model(path)
    crops = mixed_crops(1)
    with torch.no_grad():
        expected = np.concatenate([FusedModel(backbone, spec)(torch.from_numpy(c[None])).numpy() for c in crops])
    assert np.abs(Classifier(b.path)(crops).probs - expected).max() < 1e-4


def test_parity_check_catches_a_broken_wrapper(bundle, run):
    backbone, spec, _ = load_model(run)
    broken = FusedModel(backbone, spec)
    with torch.no_grad():
        broken.backbone.fc.bias[0] += 0.5  # the graph on disk no longer matches this torch model
    with pytest.raises(ExportError, match="parity check failed"):
        parity(broken, bundle.file(), random_crops())


def test_changed_bytes_and_drifted_metadata_are_refused(bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(bundle.path, copy)
    raw = bytearray((copy / "model.onnx").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (copy / "model.onnx").write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="does not match the sha256"):
        Classifier(copy)
    shutil.rmtree(copy)
    shutil.copytree(bundle.path, copy)
    meta = json.loads((copy / "bundle.json").read_text())
    meta["labels"] = ["a", "b", "c"]
    (copy / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="does not match bundle.json"):
        Classifier(copy)
    meta["schema_version"] = 99
    (copy / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="schema_version 99"):
        load_bundle(copy)
    with pytest.raises(BundleError, match="bundle not found"):
        load_bundle(tmp_path / "nope")


def test_int8_gate_both_ways(run, tiny_data, tmp_path, monkeypatch):
    from lowres_sdk.export import int8_speed

    monkeypatch.setattr(int8_speed, "measure_speedup", lambda *a, **k: {"batch1": 1.0, "batch64": 2.0})  # accuracy gate only
    ok = export_run(run, tmp_path / "int8", int8=True, eval_per_class=12, **QUIET)
    m = ok.meta["metrics"]
    assert "model.int8.onnx" in ok.meta["files"] and ok.variants["int8"] == "model.int8.onnx"
    assert m["int8_top1_drop"] == pytest.approx(m["top1_at_8px"] - m["int8_top1_at_8px"], abs=0.01)
    assert m["int8_top1_drop"] <= 1.0
    # The INT8 model is quantized, and on the tiny task's test images it labels like the FP32 one.
    ops = {n.op_type for n in onnx.load(ok.path / "model.int8.onnx").graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} & ops
    test = [cv2.imread(str(f)) for f in sorted((tiny_data / "test").glob("*/*.png"))]
    int8, fp32 = Classifier(ok.path, precision="int8")(test), Classifier(ok.path)(test)
    assert int8.probs.shape == (len(test), 3) and np.allclose(int8.probs.sum(1), 1, atol=1e-4)
    assert np.abs(int8.probs - fp32.probs).max() < 0.1  # measured 0.03
    assert np.mean(np.array(int8.labels) == np.array(fp32.labels)) >= 0.95  # measured: all 36 alike
    monkeypatch.setattr(exporter, "MAX_INT8_DROP", -101.0)  # any result now counts as too large a drop
    with pytest.raises(ExportError, match="INT8 loses"):
        export_run(run, tmp_path / "refused", int8=True, eval_per_class=12, **QUIET)
    assert not (tmp_path / "refused").exists()  # nothing half-written
    forced = export_run(run, tmp_path / "forced", int8=True, force=True, eval_per_class=12, **QUIET)
    assert "model.int8.onnx" in forced.meta["files"]


@pytest.mark.parametrize("bad, pattern", [
    ("path", "image not found"),
    (np.zeros((8, 8, 3), np.int32), "dtype int32"),
    (np.zeros((0, 8, 3), np.uint8), "empty"),
    (np.zeros((8, 8, 2), np.uint8), "2"),
    (np.full((8, 8, 3), np.nan, np.float32), "NaN"),
    (np.full((8, 8, 3), 300.0, np.float32), r"\[0, 255\]"),
    (np.zeros((2, 2, 8, 8, 3), np.uint8), "shape"),
    (42, "got int"),
])
def test_bad_input_raises_input_error(bundle, bad, pattern):
    clf = Classifier(bundle.path)
    with pytest.raises(InputError, match=pattern):
        clf("some/image.jpg" if isinstance(bad, str) else bad)


def test_documented_conversions(bundle):
    clf = Classifier(bundle.path)
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    gray = bgr[:, :, 0]
    assert np.allclose(clf(gray).probs, clf(np.dstack([gray] * 3)).probs)
    assert np.allclose(clf(gray[:, :, None]).probs, clf(np.dstack([gray] * 3)).probs)
    bgra = np.dstack([bgr, np.full((12, 10), 7, np.uint8)])
    assert np.allclose(clf(bgra).probs, clf(bgr).probs)
    assert np.allclose(clf(bgr.astype(np.float32)).probs, clf(bgr).probs)
    big = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    view = big[::2, ::2]  # non-contiguous
    assert np.allclose(clf(view).probs, clf(np.ascontiguousarray(view)).probs)


def test_runtime_never_imports_torch(bundle):
    code = f"""
import sys
sys.modules['torch'] = None  # any import of torch now fails
import numpy as np
from lowres_sdk import Classifier
p = Classifier({str(bundle.path)!r})([np.zeros((20, 9, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)])
assert p.probs.shape == (2, 3)
assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules if sys.modules[m] is not None)
print('ok')
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr


def run_cli(*args):
    p = subprocess.run([sys.executable, "-m", "lowres_sdk.cli", *map(str, args)], capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def test_cli_export_classify_inspect_bench_check(run, tmp_path):
    import cv2

    out = tmp_path / "bundle"
    code, stdout, err = run_cli("export", run, "--out", out, "--eval-per-class", "6")
    assert code == 0, err
    assert "parity" in stdout and (out / "model.onnx").is_file()
    img = tmp_path / "crop.png"
    cv2.imwrite(str(img), np.random.default_rng(0).integers(0, 256, (30, 14, 3), dtype=np.uint8))
    code, stdout, err = run_cli("classify", img, img, "--bundle", out, "--json", "--top-k", "2")
    assert code == 0, err
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert len(rows) == 2 and len(rows[0]["top_k"]) == 2 and rows[0]["top_k"][0]["label"] in ("blob", "hstripes", "vstripes")
    code, stdout, err = run_cli("inspect", out)
    assert code == 0 and "uint8 NHWC BGR" in stdout and "blob, hstripes, vstripes" in stdout
    code, stdout, err = run_cli("bench", out, "--seconds", "0.2", "--batch-sizes", "1,4")
    assert code == 0 and "batch   4:" in stdout and "crops/s" in stdout
    code, stdout, err = run_cli("check", out, "--against", run, "--images", img)
    assert code == 0 and "parity OK" in stdout, err
    code, _, err = run_cli("classify", tmp_path / "missing.png", "--bundle", out)
    assert code == 1 and err.startswith("error: image not found")
    code, _, err = run_cli("classify", img, "--bundle", tmp_path / "nobundle")
    assert code == 1 and "bundle not found" in err


def test_fp16_stored_weights_halve_the_graph_and_keep_parity(run, bundle, tmp_path):
    # weights stored as FP16 + Casts: the file about halves, the pre-processing's small constants stay FP32,
    # the outputs stay within the FP16 tolerance of torch (and of the FP32 bundle), and `check` knows it
    import onnx

    from lowres_sdk.export.fp16_weights import MIN_ELEMENTS, store_weights_fp16
    from lowres_sdk.export.tolerances import FP16_WEIGHTS_TOLERANCE

    half = tmp_path / "half.onnx"
    converted = store_weights_fp16(bundle.file("model.onnx"), half)
    assert converted > 0
    inits = onnx.load(str(half)).graph.initializer
    assert all(i.data_type == onnx.TensorProto.FLOAT16 for i in inits if np.prod(i.dims) >= MIN_ELEMENTS)
    assert any(i.data_type == onnx.TensorProto.FLOAT for i in inits)  # small constants untouched
    # ... and back (what the DeepStream rewrite reads): float32 initializers of the FP16 values, no Casts, same outputs
    from lowres_sdk.export.fp16_weights import with_fp32_weights

    restored = with_fp32_weights(onnx.load(str(half)))
    assert not any(n.op_type == "Cast" and n.name.endswith("__cast") for n in restored.graph.node)
    assert not any(i.data_type == onnx.TensorProto.FLOAT16 for i in restored.graph.initializer)
    onnx.save(restored, str(tmp_path / "restored.onnx"))
    x = np.stack(mixed_crops()[:1] * 2)
    outs = [ort.InferenceSession(str(f), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
            for f in (half, tmp_path / "restored.onnx")]
    assert np.abs(outs[0] - outs[1]).max() < 1e-6

    b = export_run(run, tmp_path / "fp16w", eval_per_class=4, fp16_weights=True, **QUIET)
    fp32_bytes, fp16_bytes = bundle.meta["files"]["model.onnx"]["bytes"], b.meta["files"]["model.onnx"]["bytes"]
    assert fp16_bytes < 0.7 * fp32_bytes
    assert b.meta["provenance"]["weights_storage"] == "fp16"
    assert 0 < b.meta["parity"]["fp16_weights"]["max_abs_diff"] <= FP16_WEIGHTS_TOLERANCE
    crops = mixed_crops()
    assert np.abs(Classifier(b.path)(crops).probs - Classifier(bundle.path)(crops).probs).max() <= FP16_WEIGHTS_TOLERANCE
    code, stdout, err = run_cli("check", b.path, "--against", run)
    assert code == 0 and "tolerance 0.005" in stdout, err
    code, stdout, err = run_cli("inspect", b.path)
    assert code == 0 and "stores its weights as FP16" in stdout, err
    code, stdout, err = run_cli("check", b.path, "--against", run, "--tolerance", "1e-9")
    assert code != 0
