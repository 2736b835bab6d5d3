"""TensorRT-ready graph: the onnx-tensorrt rules that bite us, parity of the cut graph + host
pre-processing with the fused graph, the engine cache's key handling, and (GPU only) engines."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from onnx import TensorProto, helper

from lowres_sdk import Classifier, ExportError
from lowres_sdk.bundle import ONNX_METADATA_KEY
from lowres_sdk.errors import BundleError, LowresError
from lowres_sdk.tensorrt.graph import TRT_INPUT_KEY, trt_ready, trt_violations, write_trt_onnx
from lowres_sdk.host_preprocess import antialiased_weights, prepare
from lowres_sdk.spec import InputSpec
from lowres_sdk.tensorrt import runner as trtb

SHAPES = [(16, 16), (7, 5), (128, 48), (48, 128), (33, 17), (96, 96), (8, 8)]


@pytest.fixture(scope="module")
def shipped(shipped_one_model):
    return shipped_one_model


def _run(path_or_model, name, x):
    src = path_or_model.SerializeToString() if isinstance(path_or_model, onnx.ModelProto) else str(path_or_model)
    return ort.InferenceSession(src, providers=["CPUExecutionProvider"]).run(None, {name: x})[0]


def test_shipped_graph_breaks_the_rules_and_the_cut_graph_passes(shipped):
    found = trt_violations(onnx.load(str(shipped.file())))
    assert any("antialias=1" in f for f in found) and any("dynamic dims [1, 2]" in f for f in found)
    cut = trt_ready(onnx.load(str(shipped.file())), shipped.spec.resolution)
    assert trt_violations(cut) == []
    (inp,) = cut.graph.input
    dims = [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim]
    assert inp.name == "pixels" and inp.type.tensor_type.elem_type == TensorProto.FLOAT and dims == ["batch", 3, 16, 16]
    assert not [n for n in cut.graph.node if n.op_type == "Resize"]


def _tiny(opset=18, dtype=TensorProto.FLOAT, dims=("batch", 3, 8, 8), node=None):
    node = node or helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", dtype, list(dims))],
                              [helper.make_tensor_value_info("y", dtype, list(dims))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("model, expected", [
    (_tiny(), None),
    (_tiny(opset=21), "opset 21 is outside TensorRT 10's 9..20"),
    (_tiny(dtype=TensorProto.DOUBLE), "dtype DOUBLE"),
    (_tiny(dtype=TensorProto.UINT16), "dtype UINT16"),
    (_tiny(dims=("batch", 3, "h", "w")), "dynamic dims [2, 3]"),
    (_tiny(node=helper.make_node("Resize", ["x", "", "s"], ["y"], mode="linear", antialias=1)), "antialias=1"),
    (_tiny(node=helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")), "custom domain 'com.microsoft'"),
])
def test_each_rule_is_caught(model, expected):
    found = trt_violations(model)
    if expected is None:
        assert found == []
    else:
        assert any(expected in f for f in found), found


def test_host_resize_is_the_antialiased_kernel_of_torch():
    w = antialiased_weights(16, 16)
    assert np.array_equal(w, np.eye(16, dtype=np.float32))
    for n_in, n_out in [(37, 16), (5, 16), (128, 16), (16, 7)]:
        w = antialiased_weights(n_in, n_out)
        assert w.shape == (n_out, n_in) and np.allclose(w.sum(1), 1, atol=1e-6) and (w >= 0).all()
    rng = np.random.default_rng(0)
    spec = InputSpec(size=16, resolution=16, fit="stretch", channel_order="BGR")
    for h, w in [(37, 29), (5, 9), (64, 12)]:
        crops = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
        expected = F.interpolate(x, size=(16, 16), mode="bilinear", antialias=True, align_corners=False).numpy()
        assert np.abs(prepare(crops, spec) - expected).max() < 1e-5


def test_host_letterbox_pads_with_the_training_gray():
    spec = InputSpec(size=4, resolution=4, fit="letterbox")
    out = prepare(np.zeros((4, 2, 3), np.uint8), spec)  # tall black crop -> gray columns left and right
    assert out.shape == (1, 3, 4, 4)
    assert np.allclose(out[0, :, :, 0], 128 / 255) and np.allclose(out[0, :, :, 1:3], 0)


@pytest.mark.parametrize("which", ["shipped", "tiny"])
def test_cut_graph_plus_host_preprocessing_equals_the_fused_graph(which, shipped, tiny_bundle):
    bundle = shipped if which == "shipped" else tiny_bundle  # letterbox 16 px / stretch 8 px -> bicubic up to 16
    cut = trt_ready(onnx.load(str(bundle.file())), bundle.spec.resolution)
    rng = np.random.default_rng(1)
    worst = 0.0
    for h, w in SHAPES:
        crops = rng.integers(0, 256, (3, h, w, 3), dtype=np.uint8)
        got = _run(cut, "pixels", prepare(crops, bundle.spec))
        worst = max(worst, float(np.abs(got - _run(bundle.file(), "images", crops)).max()))
    assert worst <= 1e-4


def test_written_trt_onnx_says_what_it_is_and_the_cli_writes_it(shipped, tmp_path):
    path = write_trt_onnx(shipped, tmp_path / "model.trt.onnx")
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["lowres_sdk.source_fingerprint"] == shipped.fingerprint
    assert '"name": "pixels"' in meta[TRT_INPUT_KEY] and ONNX_METADATA_KEY in meta
    with pytest.raises(ExportError, match="has no fp16 model"):
        write_trt_onnx(shipped, tmp_path / "x.onnx", "fp16")
    from lowres_sdk.cli import cli

    res = CliRunner().invoke(cli, ["export", str(shipped.path), "--trt-onnx", str(tmp_path / "cli.onnx")])
    assert res.exit_code == 0, res.output
    assert "input 'pixels' float32 [N, 3, 16, 16]" in res.output and (tmp_path / "cli.onnx").is_file()


def test_the_trt_ready_int8_graph_passes_the_rules(tiny_run, tmp_path):
    from lowres_sdk.export.exporter import export_run

    bundle = export_run(tiny_run, tmp_path / "b", int8=True, force=True, eval_per_class=4, log=lambda *a: None)
    int8 = write_trt_onnx(bundle, tmp_path / "model.trt.int8.onnx", "int8")
    assert trt_violations(onnx.load(str(int8))) == []
    r = bundle.spec.resolution
    assert _run(int8, "pixels", prepare(np.zeros((2, r, r, 3), np.uint8), bundle.spec)).shape == (2, len(bundle.labels))


# --- engine cache (CPU-checkable: the file format and the refusal of a mismatched engine) ---

DEVICE = {"gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}


def _key(**kw):
    args = dict(device=DEVICE, trt_version="10.7.0", fingerprint="ab" * 32, precision="fp16", profile=(1, 16, 64))
    args.update(kw)
    return trtb.engine_key(**args)


def test_engine_file_carries_its_key_and_a_mismatch_is_refused_with_what_differs(tmp_path):
    key = _key()
    path = trtb.write_engine(trtb.engine_path(tmp_path, key), key, b"serialized-engine")
    assert trtb.read_engine(path) == (key, b"serialized-engine")
    assert trtb.find_engine(tmp_path, key) == path
    other = _key(device={"gpu": "NVIDIA A100-SXM4-40GB", "compute_capability": "8.0"}, trt_version="10.3.0")
    assert trtb.engine_path(tmp_path, other) != path
    with pytest.raises(trtb.BackendError) as e:
        trtb.find_engine(tmp_path, other)
    msg = str(e.value)
    assert "gpu NVIDIA H100 80GB HBM3 (here NVIDIA A100-SXM4-40GB)" in msg and "tensorrt 10.7.0 (here 10.3.0)" in msg
    assert "lowres export BUNDLE --tensorrt --precision fp16" in msg
    for kw in ({"precision": "int8"}, {"profile": (1, 8, 32)}, {"fingerprint": "cd" * 32}):
        assert trtb.engine_path(tmp_path, _key(**kw)) != path  # every key field selects its own engine
    (tmp_path / "junk.engine").write_bytes(b"not an engine")
    with pytest.raises(BundleError, match="not a lowres_sdk TensorRT engine"):
        trtb.read_engine(tmp_path / "junk.engine")
    with pytest.raises(trtb.BackendError, match="batch profile"):
        _key(profile=(8, 4, 64))
    with pytest.raises(trtb.BackendError, match="precision"):
        _key(precision="int4")


def _have_gpu_tensorrt() -> str | None:
    try:
        import tensorrt  # noqa: F401

        trtb.current_device()
    except Exception as e:  # no package, no driver, no device: all mean "cannot run here"
        return f"needs an NVIDIA GPU with tensorrt + cuda-python ({type(e).__name__}: {str(e)[:80]})"
    return None


def test_tensorrt_backend_without_tensorrt_is_a_typed_error(shipped):
    if _have_gpu_tensorrt() is None:
        pytest.skip("TensorRT is available here")
    with pytest.raises(LowresError, match="pip install 'lowres_sdk\\[tensorrt\\]'"):
        Classifier(shipped, backend="tensorrt", precision="fp16")


@pytest.mark.gpu
@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-4), ("fp16", 2e-2), ("int8", 6e-2)])
def test_engine_matches_onnxruntime(shipped, tmp_path, precision, tolerance):
    reason = _have_gpu_tensorrt()
    if reason:
        pytest.skip(reason)
    if precision == "int8" and "int8" not in shipped.variants:
        pytest.skip("the shipped default has no INT8 model (its export's INT8 gate refused it)")
    from lowres_sdk.tensorrt.engine import build_engine

    path = build_engine(shipped, precision, engine_dir=tmp_path, log=lambda *a: None)
    assert trtb.read_engine(path)[0]["precision"] == precision
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in SHAPES * 20]  # 140 > max batch 64
    ref = Classifier(shipped, precision="int8" if precision == "int8" else "fp32")(crops)
    got = Classifier(shipped, backend="tensorrt", precision=precision, engine_dir=str(tmp_path))(crops)
    assert got.classes == ref.classes and got.probs.shape == ref.probs.shape
    assert np.abs(got.probs - ref.probs).max() <= tolerance
    assert (got.indices == ref.indices).mean() >= 0.95
    assert build_engine(shipped, precision, engine_dir=tmp_path, log=lambda *a: None) == path  # cached, not rebuilt


@pytest.mark.gpu
def test_engine_for_another_profile_is_refused(shipped, tmp_path):
    reason = _have_gpu_tensorrt()
    if reason:
        pytest.skip(reason)
    from lowres_sdk.tensorrt.engine import build_engine

    build_engine(shipped, "fp16", engine_dir=tmp_path, profile=(1, 2, 8), log=lambda *a: None)
    with pytest.raises(trtb.BackendError, match="profile"):
        Classifier(shipped, backend="tensorrt", precision="fp16", engine_dir=str(tmp_path))


def test_fp16_stored_weights_cut_for_tensorrt_like_the_fp32_graph(shipped, tmp_path):
    # `lowres export --fp16-weights` graphs: their weight Casts pass the TensorRT rules and the cut graph
    # + host pre-processing still equals the fused graph
    from lowres_sdk.export.fp16_weights import store_weights_fp16

    half = tmp_path / "half.onnx"
    store_weights_fp16(shipped.file(), half)
    cut = trt_ready(onnx.load(str(half)), shipped.spec.resolution)
    assert trt_violations(cut) == []
    crops = np.random.default_rng(2).integers(0, 256, (3, 40, 18, 3), dtype=np.uint8)
    got = _run(cut, "pixels", prepare(crops, shipped.spec))
    assert np.abs(got - _run(half, "images", crops)).max() <= 1e-4
