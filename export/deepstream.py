"""What a DeepStream pipeline needs to run a classify bundle as a secondary classifier (nvinfer):
a fixed-size float NCHW ONNX without the fused pre-processing, its labels file and its config.

nvinfer scales each object crop to the network size and computes
``net-scale-factor * (pixel - offsets[c])`` -- one scale for all channels. The bundle's
normalisation is ``(pixel / 255 - mean[c]) / std[c]``, so offsets = 255 * mean, scale = 1/255, and
the per-channel 1/std is folded into the first convolution's weights (exact: the convolution is
linear and its zero padding is zero in both spaces). Works from the bundle alone.
"""
from __future__ import annotations

import configparser
import json
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lowres_sdk.bundle import ONNX_METADATA_KEY, Bundle, description_of
from lowres_sdk.errors import ExportError

from .fp16_weights import with_fp32_weights
from .tolerances import PARITY_TOLERANCE

MODEL, LABELS, CONFIG = "model.onnx", "labels.txt", "config_infer_secondary_lowres.txt"
INPUT = "input"
MODEL_COLOR_FORMAT = {"RGB": 0, "BGR": 1}  # nvinfer's model-color-format codes


def _producer(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in graph.node for o in n.output}


def _normalization(model: onnx.ModelProto):
    """(Sub, Div, first Conv) of the fused graph's ``(x - mean) / std`` -> network."""
    graph, inits = model.graph, {t.name for t in model.graph.initializer}
    made_by = _producer(graph)
    conv = next((n for n in graph.node if n.op_type == "Conv"), None)
    div = made_by.get(conv.input[0]) if conv is not None else None
    sub = made_by.get(div.input[0]) if div is not None and div.op_type == "Div" else None
    if sub is None or sub.op_type != "Sub" or sub.input[1] not in inits or div.input[1] not in inits \
            or conv.input[1] not in inits:
        raise ExportError("cannot find the normalisation (Sub mean, Div std) feeding the first Conv: "
                          "not a lowres_sdk FP32 bundle graph")
    return sub, div, conv


def network_graphs(model: onnx.ModelProto,
                   size: int) -> tuple[onnx.ModelProto, onnx.ModelProto, np.ndarray, np.ndarray]:
    """(network, folded, mean, std): ``network`` takes [N, 3, size, size] pixels in [0, 1] (the
    bundle's own normalisation inside); ``folded`` takes ``pixels - mean`` with 1/std folded into
    the first convolution."""
    sub, div, conv = _normalization(model)
    inits = {t.name: t for t in model.graph.initializer}
    mean = numpy_helper.to_array(inits[sub.input[1]]).reshape(-1).astype(np.float64)
    std = numpy_helper.to_array(inits[div.input[1]]).reshape(-1).astype(np.float64)
    outputs = [o.name for o in model.graph.output]
    network = onnx.utils.Extractor(onnx.shape_inference.infer_shapes(model)).extract_model([sub.input[0]], outputs)
    folded = onnx.utils.Extractor(onnx.shape_inference.infer_shapes(model)).extract_model([div.output[0]], outputs)
    for m, first in ((network, sub.input[0]), (folded, div.output[0])):
        del m.graph.input[:]
        m.graph.input.append(helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", 3, size, size]))
        for node in m.graph.node:
            node.input[:] = [INPUT if i == first else i for i in node.input]
        del m.graph.value_info[:]
        del m.opset_import[:]
        m.opset_import.extend(model.opset_import)
        m.ir_version = model.ir_version
    weight = next(t for t in folded.graph.initializer if t.name == conv.input[1])
    w = numpy_helper.to_array(weight).astype(np.float64) / std.reshape(1, -1, 1, 1)
    weight.CopyFrom(numpy_helper.from_array(w.astype(np.float32), weight.name))
    for m in (network, folded):
        onnx.checker.check_model(onnx.shape_inference.infer_shapes(m, strict_mode=True), full_check=True)
    return network, folded, mean, std


def parity(network: onnx.ModelProto, folded: onnx.ModelProto, mean: np.ndarray, size: int, seed: int = 0) -> float:
    """Max |folded - network| on random pixels fed as nvinfer would normalise them."""
    import onnxruntime as ort

    run = {name: ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
           for name, m in (("network", network), ("folded", folded))}
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 3, size, size)).astype(np.float32)
    scaled = pixels / 255.0
    nvinfer = ((1.0 / 255.0) * (pixels - (255.0 * mean).reshape(1, 3, 1, 1))).astype(np.float32)
    folded, network = run["folded"].run(None, {INPUT: nvinfer})[0], run["network"].run(None, {INPUT: scaled})[0]
    return float(np.abs(folded - network).max())


def config_text(bundle: Bundle, *, batch_size: int, threshold: float, min_object: int, network_mode: int,
                output: str) -> str:
    spec = bundle.spec  # export_deepstream, its caller, has refused a routed bundle
    mean = [255.0 * m for m in spec.mean]
    lines = [f"# DeepStream nvinfer secondary classifier written by lowres_sdk from {bundle.path}",
             f"# bundle fingerprint {bundle.fingerprint}. Differences from the bundle's own pre-processing",
             "# (docs/deployment.md): nvinfer's scaler is not the antialiased bilinear resize the model was",
             "# trained on, and its letterbox pads with black where training padded with gray 128.",
             "[property]",
             "gpu-id=0",
             f"onnx-file={MODEL}",
             f"labelfile-path={LABELS}",
             f"net-scale-factor={1.0 / 255.0!r}",
             "offsets=" + ";".join(f"{m:.4f}" for m in mean),
             f"model-color-format={MODEL_COLOR_FORMAT[spec.channel_order]}",
             f"infer-dims=3;{spec.size};{spec.size}",
             f"batch-size={batch_size}",
             "# 0 FP32, 1 INT8, 2 FP16",
             f"network-mode={network_mode}",
             "network-type=1",
             "process-mode=2",
             "gie-unique-id=2",
             "operate-on-gie-id=1",
             f"output-blob-names={output}",
             f"classifier-threshold={threshold}",
             f"maintain-aspect-ratio={int(spec.fit == 'letterbox')}",
             f"symmetric-padding={int(spec.fit == 'letterbox')}",
             f"input-object-min-width={min_object}",
             f"input-object-min-height={min_object}",
             "# NvBufSurfTransform 3 = GPU super-sampling: the closest to the model's antialiased shrink",
             "scaling-filter=3"]
    return "\n".join(lines) + "\n"


def read_config(path: str | os.PathLike) -> dict[str, str]:
    """The [property] section of an nvinfer config (for checks and tests)."""
    parser = configparser.ConfigParser(comment_prefixes=("#",), interpolation=None)
    parser.read_string(Path(path).read_text())
    return dict(parser["property"])


def export_deepstream(bundle: Bundle, out_dir: str | os.PathLike, *, batch_size: int = 16, threshold: float = 0.5,
                      min_object: int | None = None, fp16: bool = True, log=print) -> dict:
    """Write MODEL, LABELS and CONFIG into ``out_dir``; ExportError if the folded model's parity fails.

    ``out_dir`` may exist only if it holds nothing but these files (re-export replaces them)."""
    if bundle.task != "classify":
        raise ExportError(f"DeepStream export writes a classifier; {bundle.path} is a '{bundle.task}' bundle")
    spec = bundle.fixed_input_spec("DeepStream's nvinfer (one network input size)")
    bad = [lab for lab in bundle.labels if ";" in lab or "\n" in lab]
    if bad:
        raise ExportError(f"labels {bad} contain ';' or a newline, which nvinfer's labels file uses as separators")
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ExportError(f"--deepstream {out_dir} exists and is not a directory")
        foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in (MODEL, LABELS, CONFIG)
                         and not p.name.startswith(f"{MODEL}_"))  # nvinfer's cached engines
        if foreign:
            raise ExportError(f"--deepstream {out_dir} already holds other files ({', '.join(foreign[:3])}); "
                              f"give an empty or new directory")
    if spec.resolution != spec.size:
        log(f"note: nvinfer scales crops straight to {spec.size} px; the bundle first shrinks them to "
            f"{spec.resolution} px, which this export cannot express")
    network, folded, mean, std = network_graphs(with_fp32_weights(onnx.load(str(bundle.file("model.onnx")))), spec.size)
    if not np.allclose(mean, spec.mean, atol=1e-6) or not np.allclose(std, spec.std, atol=1e-6):
        raise ExportError(f"the graph's normalisation (mean {mean}, std {std}) is not the bundle's {spec.mean}, "
                          f"{spec.std}")
    diff = parity(network, folded, mean, spec.size)
    if not diff <= PARITY_TOLERANCE:
        raise ExportError(f"DeepStream model differs from the bundle's network by {diff:.3g} (> {PARITY_TOLERANCE:g})")
    log(f"DeepStream model: std folded into the first Conv; max |folded - bundle network| = {diff:.2e}")
    del folded.metadata_props[:]
    for key, value in {ONNX_METADATA_KEY: json.dumps(description_of(bundle.meta), sort_keys=True),
                       "lowres_sdk.deepstream_input": json.dumps({"name": INPUT, "layout": "NCHW", "size": spec.size,
                                                                  "value": "(pixel - 255 * mean) / 255"})}.items():
        folded.metadata_props.add(key=key, value=value)
    out_dir.mkdir(parents=True, exist_ok=True)
    contents = {MODEL: folded.SerializeToString(), LABELS: (";".join(bundle.labels) + "\n").encode(),
                CONFIG: config_text(bundle, batch_size=batch_size, threshold=threshold,
                                    min_object=min_object or max(1, spec.resolution // 2),
                                    network_mode=2 if fp16 else 0, output=folded.graph.output[0].name).encode()}
    for name, data in contents.items():
        tmp = out_dir / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, out_dir / name)
    log(f"wrote {out_dir}: {', '.join(contents)}")
    return {"max_abs_diff": diff, "files": sorted(contents)}
