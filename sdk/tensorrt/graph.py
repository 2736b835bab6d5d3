"""A TensorRT-ready graph cut from a bundle's ONNX, and the onnx-tensorrt rules that bite us.

The fused graph starts with an antialiased Resize, which TensorRT 10's ONNX parser rejects
(onnx-tensorrt docs/operators.md: "Antialiasing is not supported"; NVIDIA/TensorRT#3560: 8.6
silently ignored the flag, 10.0 refuses it). The cut keeps everything after that Resize -- the
up-sampling (when resolution < size), normalisation, network, softmax -- and takes float32 NCHW
pixels at the model's resolution; `lowres_sdk.host_preprocess.prepare` computes them on the host.
Works from the bundle alone (FP32 or Q/DQ INT8 model), no training run needed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from ..bundle import ONNX_METADATA_KEY, Bundle, description_of
from ..errors import ExportError

PIXELS = "pixels"
TRT_INPUT_KEY = "lowres_sdk.trt_input"
# TensorRT 10.0 parses opsets 9..20 (onnx-tensorrt docs/operators.md); later 10.x read newer ones,
# but 20 is what every TensorRT 10 accepts.
TRT_OPSETS = range(9, 21)
# The types onnx-tensorrt lists (DOUBLE only "limited": cast down with clamping, so refused here).
TRT_DTYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.INT32, TensorProto.INT64,
              TensorProto.INT8, TensorProto.UINT8, TensorProto.BOOL, TensorProto.FLOAT8E4M3FN, TensorProto.INT4}
STANDARD_DOMAINS = ("", "ai.onnx")


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def trt_violations(model: onnx.ModelProto) -> list[str]:
    """What onnx-tensorrt would refuse (or we refuse for it) in ``model``: opset, antialiased
    Resize, custom-domain ops, unsupported dtypes, dynamic non-batch input dims. [] = ready."""
    found = []
    opset = next((o.version for o in model.opset_import if o.domain in STANDARD_DOMAINS), None)
    if opset not in TRT_OPSETS:
        found.append(f"opset {opset} is outside TensorRT 10's {TRT_OPSETS.start}..{TRT_OPSETS.stop - 1}")
    for node in model.graph.node:
        if node.op_type == "Resize" and _attr(node, "antialias", 0):
            found.append(f"Resize '{node.name}' has antialias=1 (TensorRT: antialiasing is not supported)")
        if node.domain not in STANDARD_DOMAINS:
            found.append(f"{node.op_type} '{node.name}' is in custom domain '{node.domain}'")
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # e.g. a custom-domain op without a schema: check the declared types only
        inferred = model
    typed = [(v.name, v.type.tensor_type.elem_type) for v in
             list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output)]
    typed += [(t.name, t.data_type) for t in model.graph.initializer]
    for name, dtype in typed:
        if dtype and dtype not in TRT_DTYPES:
            found.append(f"tensor '{name}' has dtype {TensorProto.DataType.Name(dtype)}, not supported by TensorRT")
    initializers = {t.name for t in model.graph.initializer}
    for v in model.graph.input:
        if v.name in initializers:
            continue
        dims = v.type.tensor_type.shape.dim
        dynamic = [i for i, d in enumerate(dims) if not d.HasField("dim_value") and i != 0]
        if dynamic:
            found.append(f"input '{v.name}' has dynamic dims {dynamic} beyond the batch (an engine's profile "
                         f"would have to cover every crop size)")
    return found


def trt_ready(model: onnx.ModelProto, resolution: int) -> onnx.ModelProto:
    """``model`` (a bundle's fused graph) cut after its antialiased Resize: input ``pixels``
    float32 [batch, 3, resolution, resolution], outputs unchanged."""
    resizes = [n for n in model.graph.node if n.op_type == "Resize" and _attr(n, "antialias", 0)]
    if len(resizes) != 1:
        raise ExportError(f"expected the fused graph's one antialiased Resize, found {len(resizes)}: "
                          f"this model is not a lowres_sdk bundle graph (or is already TRT-ready)")
    cut = resizes[0].output[0]
    outputs = [o.name for o in model.graph.output]
    # infer_shapes gives the cut tensor a value_info, which the Extractor needs for the new input
    sub = onnx.utils.Extractor(onnx.shape_inference.infer_shapes(model)).extract_model([cut], outputs)
    del sub.graph.input[:]
    pixels = helper.make_tensor_value_info(PIXELS, TensorProto.FLOAT, ["batch", 3, resolution, resolution])
    sub.graph.input.append(pixels)
    for node in sub.graph.node:
        node.input[:] = [PIXELS if i == cut else i for i in node.input]
    del sub.graph.value_info[:]  # the fused graph's symbolic H/W shapes no longer hold
    sub.graph.name = "lowres_trt_ready"
    del sub.opset_import[:]
    sub.opset_import.extend(model.opset_import)
    sub.ir_version = model.ir_version
    sub = onnx.shape_inference.infer_shapes(sub, strict_mode=True)
    onnx.checker.check_model(sub, full_check=True)
    return sub


def write_trt_onnx(bundle: Bundle, out_path: str | os.PathLike, precision: str = "fp32") -> Path:
    """Write the TRT-ready graph of ``bundle``'s ``precision`` model to ``out_path`` (temp file,
    then rename), with the bundle description and the new input contract in its metadata."""
    variants = bundle.variants
    if precision not in variants:
        raise ExportError(f"{bundle.path} has no {precision} model (it has {', '.join(variants)})")
    spec = bundle.fixed_input_spec("a TensorRT-ready graph")
    model = trt_ready(onnx.load(str(bundle.file(variants[precision]))), spec.resolution)
    left = trt_violations(model)
    if left:
        raise ExportError("the cut graph still breaks TensorRT rules: " + "; ".join(left))
    contract = {"name": PIXELS, "dtype": "float32", "layout": "NCHW", "channel_order": spec.channel_order,
                "value_range": [0.0, 1.0], "height": spec.resolution, "width": spec.resolution, "batch": "dynamic",
                "host_preprocessing": "lowres_sdk.host_preprocess.prepare (fit, then antialiased bilinear resize)"}
    del model.metadata_props[:]
    for key, value in {ONNX_METADATA_KEY: json.dumps(description_of(bundle.meta), sort_keys=True),
                       TRT_INPUT_KEY: json.dumps(contract, sort_keys=True),
                       "lowres_sdk.source_fingerprint": bundle.fingerprint}.items():
        model.metadata_props.add(key=key, value=value)
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, out_path)
    return out_path
