"""An FP32 graph whose large weights are *stored* as FP16: each float32 initializer of at least
``min_elements`` values becomes a float16 initializer and a Cast back to float32 in front of its users.
The file halves; the arithmetic stays FP32 (onnxruntime folds the Casts into constants when the session
starts, so speed does not change); the weights are rounded to FP16 once. Small tensors (the
pre-processing's mean / std, scalars, shapes) keep full precision."""
from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MIN_ELEMENTS = 256


def store_weights_fp16(src: str | os.PathLike, dst: str | os.PathLike, min_elements: int = MIN_ELEMENTS) -> int:
    """Write ``src`` to ``dst`` with its float32 initializers of >= ``min_elements`` values stored as
    FP16; returns how many were converted."""
    model = onnx.load(str(src))
    graph = model.graph
    kept, casts = [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < min_elements:
            kept.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "__fp16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                      name=init.name + "__cast"))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)  # a Cast feeds its users, so it goes first (topological order)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(dst))
    return len(casts)


def with_fp32_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` (in place) with the weights `store_weights_fp16` stored as FP16 back as float32
    initializers and their Casts gone: the plain graph tools that read weights (the DeepStream
    rewrite) expect. A graph without them is returned unchanged."""
    graph = model.graph
    halves = {i.name: i for i in graph.initializer if i.data_type == TensorProto.FLOAT16}
    casts = [n for n in graph.node if n.op_type == "Cast" and len(n.input) == 1 and n.input[0] in halves
             and next(a.i for a in n.attribute if a.name == "to") == TensorProto.FLOAT]
    if not casts:
        return model
    used = {name for n in graph.node if n not in casts for name in n.input}
    restored = [numpy_helper.from_array(numpy_helper.to_array(halves[c.input[0]]).astype(np.float32), c.output[0])
                for c in casts]
    dropped = {c.input[0] for c in casts} - used
    kept = [i for i in graph.initializer if i.name not in dropped] + restored
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = [n for n in graph.node if n not in casts]
    del graph.node[:]
    graph.node.extend(nodes)
    return model
