"""DeepStream export: the folded model equals the bundle's network on what nvinfer feeds it, and
the nvinfer config says what the bundle's pre-processing needs."""
import dataclasses

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from lowres_sdk import ExportError
from lowres_sdk.export.deepstream import CONFIG, LABELS, MODEL, export_deepstream, network_graphs, read_config

QUIET = dict(log=lambda *a: None)


@pytest.fixture(scope="module")
def shipped(shipped_one_model):
    return shipped_one_model


def _session(path_or_model):
    src = path_or_model.SerializeToString() if isinstance(path_or_model, onnx.ModelProto) else str(path_or_model)
    return ort.InferenceSession(src, providers=["CPUExecutionProvider"])


def _as_nvinfer(crops_bgr: np.ndarray, cfg: dict) -> np.ndarray:
    """What nvinfer hands the network: net-scale-factor * (pixel - offsets), channels per model-color-format."""
    pixels = crops_bgr[..., ::-1] if cfg["model-color-format"] == "0" else crops_bgr
    offsets = np.array([float(v) for v in cfg["offsets"].split(";")], np.float32).reshape(1, 3, 1, 1)
    x = pixels.transpose(0, 3, 1, 2).astype(np.float32)
    return (np.float32(cfg["net-scale-factor"]) * (x - offsets)).astype(np.float32)


def test_config_and_labels_follow_the_bundle(shipped, tmp_path):
    report = export_deepstream(shipped, tmp_path / "ds", threshold=0.6, **QUIET)
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == sorted([MODEL, LABELS, CONFIG]) == report["files"]
    cfg = read_config(tmp_path / "ds" / CONFIG)
    spec = shipped.spec
    assert float(cfg["net-scale-factor"]) == pytest.approx(1 / 255, rel=1e-12)
    assert [float(v) for v in cfg["offsets"].split(";")] == pytest.approx([255 * m for m in spec.mean], abs=1e-3)
    assert cfg["model-color-format"] == "0"  # RGB
    assert cfg["infer-dims"] == f"3;{spec.size};{spec.size}" and cfg["network-type"] == "1"
    assert cfg["maintain-aspect-ratio"] == "1" and cfg["symmetric-padding"] == "1"  # letterbox bundle
    assert cfg["input-object-min-width"] == cfg["input-object-min-height"] == str(spec.resolution // 2)
    assert float(cfg["classifier-threshold"]) == 0.6 and cfg["onnx-file"] == MODEL and cfg["labelfile-path"] == LABELS
    model = onnx.load(str(tmp_path / "ds" / MODEL))
    assert cfg["output-blob-names"] == model.graph.output[0].name
    assert (tmp_path / "ds" / LABELS).read_text().strip().split(";") == shipped.labels


def test_folded_model_equals_the_bundle_on_what_nvinfer_feeds_it(shipped, tmp_path):
    export_deepstream(shipped, tmp_path / "ds", **QUIET)
    cfg = read_config(tmp_path / "ds" / CONFIG)
    folded = _session(tmp_path / "ds" / MODEL)
    # crops already at the network size: the bundle's resize is the identity, so the bundle's whole
    # graph and the folded network see the same pixels
    crops = np.random.default_rng(0).integers(0, 256, (32, 16, 16, 3), dtype=np.uint8)
    got = folded.run(None, {"input": _as_nvinfer(crops, cfg)})[0]
    want = _session(shipped.file()).run(None, {"images": crops})[0]
    assert np.abs(got - want).max() <= 1e-4
    # the normalisation is gone from the front of the graph: the first node is the (folded) Conv
    assert onnx.load(str(tmp_path / "ds" / MODEL)).graph.node[0].op_type == "Conv"


def test_upsampling_stretch_bundle(tiny_bundle, tmp_path):
    report = export_deepstream(tiny_bundle, tmp_path / "ds", **QUIET)  # 8 px model fed at 16, stretch fit
    assert report["max_abs_diff"] <= 1e-4
    cfg = read_config(tmp_path / "ds" / CONFIG)
    assert cfg["maintain-aspect-ratio"] == "0" and cfg["infer-dims"] == "3;16;16" and cfg["input-object-min-width"] == "4"
    network, _, mean, _ = network_graphs(onnx.load(str(tiny_bundle.file())), 16)
    crops = np.random.default_rng(1).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    pixels01 = crops[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32) / 255
    got = _session(tmp_path / "ds" / MODEL).run(None, {"input": _as_nvinfer(crops, cfg)})[0]
    assert np.abs(got - _session(network).run(None, {"input": pixels01})[0]).max() <= 1e-4


def test_refusals_keep_the_users_files(shipped, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    with pytest.raises(ExportError, match="already holds other files"):
        export_deepstream(shipped, busy, **QUIET)
    assert (busy / "mine.txt").read_text() == "keep me" and not (busy / MODEL).exists()
    export_deepstream(shipped, tmp_path / "again", **QUIET)
    (tmp_path / "again" / f"{MODEL}_b16_gpu0_fp16.engine").write_bytes(b"x")  # nvinfer's own cache is fine
    export_deepstream(shipped, tmp_path / "again", **QUIET)  # re-export replaces its own files
    # description=None: the typed description is derived again from the edited meta
    embed_meta = {**{k: v for k, v in shipped.meta.items() if k != "calibration"}, "task": "embed",
                  "output": {**shipped.meta["output"], "name": "embeddings", "shape": ["N", shipped.meta["embedding_dim"]]}}
    embed = dataclasses.replace(shipped, meta=embed_meta, description=None)
    with pytest.raises(ExportError, match="'embed' bundle"):
        export_deepstream(embed, tmp_path / "e", **QUIET)
    uncalibrated = {k: v for k, v in shipped.meta.items() if k != "calibration"}  # its thresholds name 'person'
    bad = dataclasses.replace(shipped, meta={**uncalibrated, "labels": ["a;b", *shipped.labels[1:]]}, description=None)
    with pytest.raises(ExportError, match="contain ';'"):
        export_deepstream(bad, tmp_path / "b", **QUIET)


def test_cli_writes_the_folder_and_refuses_run_options_on_a_bundle(shipped, tmp_path):
    from lowres_sdk.cli import cli

    res = CliRunner().invoke(cli, ["export", str(shipped.path), "--deepstream", str(tmp_path / "ds")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ds" / CONFIG).is_file() and "std folded into the first Conv" in res.output
    res = CliRunner().invoke(cli, ["export", str(shipped.path), "--int8", "--deepstream", str(tmp_path / "x")])
    assert res.exit_code == 2 and "apply to a training run" in res.output
    res = CliRunner().invoke(cli, ["export", str(shipped.path)])
    assert res.exit_code == 2 and "say what to write" in res.output
