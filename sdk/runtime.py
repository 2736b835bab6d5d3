"""The torch-free runtime: `Classifier` and `Embedder` over a verified bundle with onnxruntime.

Crops of mixed sizes are grouped by size and each group runs in batches of at most
``batch_size``: the graph resizes any size itself, so grouping keeps results identical to running
each crop alone (no second resize outside the graph); order is restored afterwards.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from .bundle import ONNX_METADATA_KEY, Bundle, description_of, load_bundle
from .crops import as_crops
from .errors import BundleError, InputError


@dataclass
class Predictions:
    """Classifier output for N crops."""

    indices: np.ndarray   # int64 [N], best class
    labels: list[str]     # [N], its name
    scores: np.ndarray    # float32 [N], its probability
    probs: np.ndarray     # float32 [N, C]
    classes: list[str]    # the C class names, in probs' column order

    def __len__(self) -> int:
        return len(self.indices)

    def top_k(self, k: int) -> tuple[np.ndarray, list[list[str]], np.ndarray]:
        """(indices [N, k], labels, scores [N, k]) of the k most probable classes, best first."""
        if not 1 <= k <= self.probs.shape[1]:
            raise InputError(f"k must be in 1..{self.probs.shape[1]}, got {k}")
        idx = np.argsort(-self.probs, axis=1, kind="stable")[:, :k]
        return idx, [[self.classes[j] for j in row] for row in idx], np.take_along_axis(self.probs, idx, 1)


def available_providers() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()


def _default_providers() -> list[str]:
    preferred = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    have = available_providers()
    return [p for p in preferred if p in have]


class _BundleModel:
    task = ""

    def __init__(self, bundle: str | Bundle | None = None, *, providers: list[str] | None = None,
                 batch_size: int = 64, precision: str = "fp32", threads: int | None = None,
                 backend: str = "onnxruntime", engine_dir: str | None = None):
        import onnxruntime as ort

        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        if self.bundle.task != self.task:
            raise BundleError(f"{self.bundle.path} is a '{self.bundle.task}' bundle; {type(self).__name__} needs '{self.task}'")
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self._trt = None
        if backend == "tensorrt":  # an engine built by `lowres export BUNDLE --tensorrt`; precision fp32/fp16/int8
            from .tensorrt_backend import TensorRTRunner

            self.batch_size, self.precision, self.session = batch_size, precision, None
            self._trt = TensorRTRunner(self.bundle, precision, engine_dir)
            return
        if backend != "onnxruntime":
            raise InputError(f"backend must be 'onnxruntime' or 'tensorrt', got {backend!r}")
        variants = self.bundle.variants
        if precision not in variants:
            raise BundleError(f"{self.bundle.path} has no {precision} model (it has {', '.join(variants)})")
        self.batch_size, self.precision = batch_size, precision
        have = available_providers()
        providers = providers or _default_providers()
        missing = [p for p in providers if p not in have]
        if missing:
            raise InputError(f"execution providers {missing} are not available here (available: {have})")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(self.bundle.file(variants[precision])), options, providers=providers)
        embedded = self.session.get_modelmeta().custom_metadata_map.get(ONNX_METADATA_KEY)
        if embedded is None or json.loads(embedded) != description_of(self.bundle.meta):
            raise BundleError(f"{self.bundle.path}: the metadata inside {variants[precision]} does not match bundle.json")

    @property
    def providers(self) -> list[str]:
        return ["TensorRT"] if self._trt else self.session.get_providers()

    def _run(self, crops) -> np.ndarray:
        crops = as_crops(crops)
        if self._trt:  # the engine takes fixed-size pixels: the host does the graph's fit + antialiased resize
            from .host_preprocess import prepare

            return self._trt.run(prepare(crops, self.bundle.spec))
        groups = defaultdict(list)
        for i, c in enumerate(crops):
            groups[c.shape].append(i)
        out = None
        for index in groups.values():
            for start in range(0, len(index), self.batch_size):
                part = index[start:start + self.batch_size]
                batch = np.stack([crops[i] for i in part])
                y = self.session.run(None, {"images": batch})[0]
                if out is None:
                    out = np.empty((len(crops), y.shape[1]), dtype=np.float32)
                out[part] = y
        return out


class Classifier(_BundleModel):
    """``Classifier(bundle=None)(crops) -> Predictions``; None loads the default bundle shipped in the package."""

    task = "classify"

    @property
    def labels(self) -> list[str]:
        return self.bundle.labels

    def __call__(self, crops) -> Predictions:
        probs = self._run(crops)
        idx = probs.argmax(1).astype(np.int64)
        return Predictions(idx, [self.labels[i] for i in idx], probs[np.arange(len(idx)), idx], probs, self.labels)


class Embedder(_BundleModel):
    """``Embedder(bundle)(crops) -> float32 [N, D]`` unit vectors (cosine similarity = dot product)."""

    task = "embed"

    @property
    def dim(self) -> int:
        return int(self.bundle.meta["embedding_dim"])

    def __call__(self, crops) -> np.ndarray:
        return self._run(crops)
