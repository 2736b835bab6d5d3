"""Tiny bundles built on the fly with onnx.helper (no torch, milliseconds): the runtime, bundle and
CLI tests run on them. The classifier's graph: mean BGR colour -> 3 logits (blue, green, red) ->
softmax, so a pure red crop is "red" with probability ~1 and a gray crop is 1/3 each."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lowres_sdk.bundle import ONNX_METADATA_KEY, describe, description_of, write_bundle
from lowres_sdk.spec import InputSpec

LABELS = ["blue", "green", "red"]


def tiny_graph(task: str = "classify", width: int = 3, input_name: str = "images", output_name: str | None = None,
               out_rank: int = 2, input_dtype=TensorProto.UINT8) -> onnx.ModelProto:
    output_name = output_name or ("probs" if task == "classify" else "embeddings")
    w = np.zeros((3, width), np.float32)
    w[:, :3] = np.eye(3, dtype=np.float32)[:, : min(3, width)] / 8  # 255/8 ~ 32 logits apart
    nodes = [helper.make_node("Cast", [input_name], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["f"], ["m"], axes=[1, 2], keepdims=0),
             helper.make_node("MatMul", ["m", "w"], ["z"])]
    if task == "classify":
        nodes.append(helper.make_node("Softmax", ["z"], ["y"], axis=1))
    else:
        nodes.append(helper.make_node("LpNormalization", ["z"], ["y"], axis=1, p=2))
    if out_rank == 1:
        nodes.append(helper.make_node("ReduceMax", ["y"], [output_name], axes=[1], keepdims=0))
    else:
        nodes.append(helper.make_node("Identity", ["y"], [output_name]))
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info(input_name, input_dtype, ["N", "H", "W", 3])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", width][:out_rank])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def embed_metadata(model: onnx.ModelProto, description: dict) -> onnx.ModelProto:
    del model.metadata_props[:]
    model.metadata_props.add(key=ONNX_METADATA_KEY, value=json.dumps(description, sort_keys=True))
    return model


def make_bundle(out: Path, task: str = "classify", labels=None, calibration: dict | None = None,
                graph: onnx.ModelProto | None = None, int8: bool = False, **graph_kw) -> Path:
    """A valid bundle at ``out`` (``graph``/``graph_kw`` change the model; the description stays
    the honest one for ``labels``)."""
    labels = list(LABELS if labels is None else labels)
    spec = InputSpec(size=16, resolution=16, fit="letterbox")
    variants = {"int8": "model.int8.onnx"} if int8 else {}
    desc = describe(task, labels, spec, embedding_dim=4 if task == "embed" else 8, provenance={"test": True},
                    variants=variants, calibration=calibration)
    if graph is None:
        graph = tiny_graph(task, len(labels) if task == "classify" else 4, **graph_kw)
    out = Path(out)
    src = out.parent / f".{out.name}.src"
    src.mkdir(parents=True, exist_ok=True)
    files = {"model.onnx": src / "model.onnx"}
    onnx.save(embed_metadata(graph, desc), str(files["model.onnx"]))
    if int8:
        files["model.int8.onnx"] = files["model.onnx"]
    write_bundle(out, desc, files)
    return out


def rewrite_meta(bundle: Path, edit) -> None:
    """Apply ``edit(meta)`` to bundle.json and to the metadata embedded in model.onnx, so only the
    edited content (not a mismatch between the two) is what a loader must catch."""
    meta = json.loads((bundle / "bundle.json").read_text())
    edit(meta)
    model = onnx.load(str(bundle / "model.onnx"))
    embed_metadata(model, description_of(meta))
    onnx.save(model, str(bundle / "model.onnx"))
    rehash(bundle, meta)


def rehash(bundle: Path, meta: dict | None = None) -> None:
    """Recompute the sha256/bytes of every listed file that exists, so only the edit is wrong."""
    import hashlib

    meta = meta if meta is not None else json.loads((bundle / "bundle.json").read_text())
    files = meta.get("files")
    for name, info in (files.items() if isinstance(files, dict) else ()):
        f = bundle / name
        if isinstance(info, dict) and isinstance(name, str) and f.is_file():
            info["sha256"] = hashlib.sha256(f.read_bytes()).hexdigest()
            info["bytes"] = f.stat().st_size
    (bundle / "bundle.json").write_text(json.dumps(meta))
