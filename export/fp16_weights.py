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
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=init.name + "__cast"))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)  # a Cast feeds its users, so it goes first (topological order)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(dst))
    return len(casts)
