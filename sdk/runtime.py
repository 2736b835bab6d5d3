"""The torch-free runtime: `Classifier` and `Embedder` over a verified bundle with onnxruntime.

Crops of mixed sizes are grouped by size (and so, in a routed bundle, by the model their size is
routed to inside the graph: docs/bundle.md) and each group runs in batches of at most
``batch_size`` (and at most `MAX_BATCH_PIXELS` padded pixels): the graph resizes any size itself,
so grouping keeps results identical to running each crop alone (no second resize outside the
graph); order is restored afterwards. The graph's signature (tensor names, dtypes, ranks, output
width = labels) is checked when the model opens, before any user crop runs.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict

import numpy as np

from .bundle import LEGACY_OUTPUT_NAME, ONNX_METADATA_KEY, OUTPUT_NAMES, Bundle, description_of, load_bundle
from .crops import as_crops
from .errors import BundleError, InputError
from .results import UNKNOWN, Predictions, _int_arg

__all__ = ["Classifier", "Embedder", "Predictions", "UNKNOWN", "available_providers", "open_session"]
# Padded pixels (max(h, w)^2 per crop, the letterbox's square) per onnxruntime call: ~50 MB of
# float32 RGB per copy the graph makes. 32x32 crops still run 4,096 at a time.
MAX_BATCH_PIXELS = 1 << 22
FROM_BUNDLE = "bundle"  # unknown_below's default: the bundle's calibrated thresholds


def max_threads() -> int:
    """The most onnxruntime threads accepted: beyond 4 per core only costs (100,000 crashed the process)."""
    return 4 * (os.cpu_count() or 1)


def available_providers() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()


def _default_providers() -> list[str]:
    preferred = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    have = available_providers()
    return [p for p in preferred if p in have]


def _providers_arg(providers) -> list[str]:
    if providers is None:
        return _default_providers()
    if isinstance(providers, str):  # one name, not its characters
        providers = [providers]
    if not isinstance(providers, (list, tuple)) or not providers or not all(isinstance(p, str) for p in providers):
        raise InputError(f"providers must be a provider name or a list of them, got {providers!r}"[:200])
    have = available_providers()
    missing = [p for p in providers if p not in have]
    if missing:
        raise InputError(f"execution providers {missing} are not available here (available: {have})")
    return list(providers)


def _probability(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.floating, np.integer)) \
        and 0.0 <= float(value) <= 1.0


def _bundle_thresholds(bundle: Bundle) -> np.ndarray | None:
    """The calibrated threshold of each label (float [C]), or None for an uncalibrated bundle."""
    c = bundle.calibration
    if c is None:
        return None
    by_label = c.unknown_below_by_label or {}
    return np.array([by_label.get(label, c.unknown_below) for label in bundle.labels], dtype=np.float64)


def _unknown_arg(value, bundle: Bundle) -> np.ndarray | None:
    """``unknown_below`` as one threshold per label (float [C]) or None (no "unknown")."""
    if isinstance(value, str) and value == FROM_BUNDLE:
        return _bundle_thresholds(bundle)
    if value is None:
        return None
    labels = bundle.labels
    if isinstance(value, dict):
        stray = [k for k in value if k not in labels]
        if stray or not all(_probability(v) for v in value.values()):
            raise InputError(f"unknown_below as a dict maps labels of the bundle {labels} to probabilities in [0, 1], "
                             f"got {value!r}"[:300])
        base = _bundle_thresholds(bundle)  # the labels it leaves out keep the bundle's thresholds (none: 0)
        base = np.zeros(len(labels)) if base is None else base
        return np.array([float(value.get(label, t)) for label, t in zip(labels, base)])
    if not _probability(value):
        raise InputError(f"unknown_below must be a probability in [0, 1], a dict label -> probability, or None, "
                         f"got {value!r}"[:200])
    return np.full(len(labels), float(value))


def open_session(bundle: Bundle, precision: str = "fp32", providers=None, threads: int | None = None):
    """An onnxruntime session on ``bundle``'s ``precision`` model whose signature and embedded
    metadata match bundle.json, or BundleError. Returns (session, input name, output name)."""
    import onnxruntime as ort

    if not isinstance(precision, str) or precision not in bundle.variants:
        raise BundleError(f"{bundle.path} has no {precision!r} model (it has {', '.join(bundle.variants)})")
    name = bundle.variants[precision]
    path = bundle.file(name)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BundleError(f"cannot read {path}: {e.strerror or e}") from e
    # Hashed again as read: the bytes that run are the bytes bundle.json vouches for. Loading from
    # bytes also means no external-data file can be pulled in from outside the bundle.
    if hashlib.sha256(data).hexdigest() != bundle.description.files[name].sha256:
        raise BundleError(f"{path} does not match the sha256 in bundle.json: the file was changed or damaged")
    options = ort.SessionOptions()
    # No arena: it kept the peak of the largest batch ever run (343 MB after 64 crops of 512 px,
    # 118 MB without); batch-64 32-px speed without it was 0.78-1.08x (noise on this machine).
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 3  # onnxruntime's own warnings would precede our error on stderr
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(data, options, providers=providers)
    except Exception as e:  # onnxruntime raises its own pybind types (Fail, InvalidProtobuf, ...)
        raise BundleError(f"{path} is not a loadable ONNX model: {str(e).strip().splitlines()[0][:300]}") from None
    try:
        embedded = session.get_modelmeta().custom_metadata_map.get(ONNX_METADATA_KEY)
        same = embedded is not None and json.loads(embedded) == description_of(bundle.meta)
    except (ValueError, RecursionError):
        same = False
    if not same:
        raise BundleError(f"{bundle.path}: the metadata inside {name} does not match bundle.json")
    return (session, *_check_signature(session, bundle, name))


def _check_signature(session, bundle: Bundle, name: str) -> tuple[str, str]:
    d = bundle.description
    where = f"{bundle.path / name}"
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or inputs[0].name != d.input.name:
        raise BundleError(f"{where}: expected one input named {d.input.name!r} (bundle.json), "
                          f"the graph has {[i.name for i in inputs]}")
    i = inputs[0]
    if (i.type != "tensor(uint8)" or len(i.shape) != 4
            or i.shape[3] not in (3, None) and not isinstance(i.shape[3], str)):
        raise BundleError(f"{where}: input {i.name!r} must be uint8 [N, H, W, 3], the graph has {i.type} {i.shape}")
    names = [o.name for o in outputs]
    if d.output.name in names:
        out = outputs[names.index(d.output.name)]
    elif len(outputs) == 1 and names[0] == LEGACY_OUTPUT_NAME and d.output.name == OUTPUT_NAMES[d.task]:
        out = outputs[0]  # exported before graph and bundle.json agreed on the name
    else:
        raise BundleError(f"{where}: bundle.json names the output {d.output.name!r}, the graph has {names}")
    width = d.output_width
    if out.type != "tensor(float)" or len(out.shape) != 2 or isinstance(out.shape[1], int) and out.shape[1] != width:
        raise BundleError(f"{where}: output {out.name!r} must be float32 [N, {width}] "
                          f"({'one column per label' if d.task == 'classify' else 'embedding_dim'}), "
                          f"the graph has {out.type} {out.shape}")
    # Shapes can be symbolic: one tiny crop settles the width before any user crop runs; a routed
    # bundle's graph also gets one crop of each route's smallest size, so every model it holds runs.
    for side in sorted({8, *(r.min_side for r in d.routes if r.min_side)}):
        try:
            y = session.run([out.name], {i.name: np.full((1, side, side, 3), 128, np.uint8)})[0]
        except Exception as e:  # onnxruntime's pybind error types
            raise BundleError(f"{where} fails on a {side}x{side} test crop: "
                              f"{str(e).strip().splitlines()[0][:300]}") from None
        if y.shape != (1, width) or not np.isfinite(y).all():
            raise BundleError(f"{where}: a {side}x{side} test crop gives output shape {y.shape}"
                              f"{'' if np.isfinite(y).all() else ' with NaN/inf'}; expected (1, {width})")
    return i.name, out.name


class _BundleModel:
    task = ""

    def __init__(self, bundle: str | os.PathLike | Bundle | None = None, *, providers: list[str] | str | None = None,
                 batch_size: int = 64, precision: str = "fp32", threads: int | None = None,
                 backend: str = "onnxruntime", engine_dir: str | None = None):
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        if self.bundle.task != self.task:
            raise BundleError(f"{self.bundle.path} is a '{self.bundle.task}' bundle; "
                              f"{type(self).__name__} needs '{self.task}'")
        self.batch_size = batch_size
        if precision == "auto":  # the bundle's INT8 model if it ships one (it passed the export's accuracy gate)
            precision = "int8" if backend == "onnxruntime" and "int8" in self.bundle.variants else "fp32"
        self.precision = precision
        self._trt = None
        if backend == "tensorrt":  # an engine built by `lowres export BUNDLE --tensorrt`; precision fp32/fp16/int8
            from .tensorrt.runner import TensorRTRunner

            self.session = None
            self._trt = TensorRTRunner(self.bundle, precision, engine_dir)
            return
        if backend != "onnxruntime":
            raise InputError(f"backend must be 'onnxruntime' or 'tensorrt', got {backend!r}")
        if threads is not None:
            threads = _int_arg(threads, "threads")
            if not 1 <= threads <= max_threads():
                raise InputError(f"threads must be in 1..{max_threads()} (4 per core), got {threads}")
        self.session, self.input_name, self.output_name = open_session(
            self.bundle, precision, _providers_arg(providers), threads)

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value) -> None:
        value = _int_arg(value, "batch_size")
        if value < 1:
            raise InputError(f"batch_size must be >= 1, got {value}")
        self._batch_size = value

    @property
    def providers(self) -> list[str]:
        return ["TensorRT"] if self._trt else self.session.get_providers()

    def _run(self, crops) -> np.ndarray:
        if (isinstance(crops, (list, tuple)) or isinstance(crops, np.ndarray) and crops.ndim == 4) and len(crops) == 0:
            # no crops, no answers (a frame with nothing in it)
            return np.zeros((0, self.bundle.description.output_width), np.float32)
        crops = as_crops(crops)
        if self._trt:  # the engine takes fixed-size pixels: the host does the graph's fit + antialiased resize
            from .host_preprocess import prepare

            return self._trt.run(prepare(crops, self.bundle.spec))
        groups = defaultdict(list)
        for i, c in enumerate(crops):
            groups[c.shape].append(i)
        out = np.empty((len(crops), self.bundle.description.output_width), dtype=np.float32)
        for (h, w, _), index in groups.items():
            step = max(1, min(self.batch_size, MAX_BATCH_PIXELS // (max(h, w) ** 2)))
            for start in range(0, len(index), step):
                part = index[start:start + step]
                batch = np.stack([crops[i] for i in part])
                out[part] = self.session.run([self.output_name], {self.input_name: batch})[0]
        return out


class Classifier(_BundleModel):
    """``Classifier(bundle=None)(crops) -> Predictions``; None loads the default bundle shipped in the package.

    ``unknown_below``: predictions whose best probability is below their class's threshold are
    labelled "unknown". Default (``"bundle"``): the bundle's calibrated thresholds (``calibration.unknown_below``,
    or a label's own in ``calibration.unknown_below_by_label``; none for uncalibrated bundles); a
    number in [0, 1] sets one threshold for every label, a dict label -> number those labels' (the
    others keep the bundle's), ``None`` disables it."""

    task = "classify"

    def __init__(self, bundle: str | os.PathLike | Bundle | None = None, *,
                 unknown_below: float | dict[str, float] | str | None = FROM_BUNDLE,
                 providers: list[str] | str | None = None, batch_size: int = 64, precision: str = "fp32",
                 threads: int | None = None, backend: str = "onnxruntime", engine_dir: str | None = None):
        super().__init__(bundle, providers=providers, batch_size=batch_size, precision=precision, threads=threads,
                         backend=backend, engine_dir=engine_dir)
        self._thresholds = _unknown_arg(unknown_below, self.bundle)

    @property
    def unknown_below(self) -> float | dict[str, float] | None:
        """The thresholds in force: one number when every label has the same, else label -> threshold; None when off."""
        t = self._thresholds
        if t is None:
            return None
        if (t == t[0]).all():
            return float(t[0])
        return {label: float(v) for label, v in zip(self.labels, t)}

    @unknown_below.setter
    def unknown_below(self, value) -> None:
        self._thresholds = _unknown_arg(value, self.bundle)

    @property
    def thresholds(self) -> np.ndarray | None:
        """The threshold of each label, in ``labels`` order (float [C]), or None when "unknown" is off."""
        return None if self._thresholds is None else self._thresholds.copy()

    @property
    def labels(self) -> list[str]:
        return self.bundle.labels

    def __call__(self, crops) -> Predictions:
        """``crops``: an HxWx3 BGR array, an image path, a PIL image, or a list of them (sdk/crops.py);
        an empty list gives an empty `Predictions`."""
        probs = self._run(crops)
        idx = probs.argmax(1).astype(np.int64)
        scores = probs[np.arange(len(idx)), idx]
        known = scores >= self._thresholds[idx] if self._thresholds is not None else np.ones(len(idx), bool)
        labels = [self.labels[i] if k else UNKNOWN for i, k in zip(idx, known)]
        return Predictions(idx, labels, scores, probs, self.labels, known, self.unknown_below)


class Embedder(_BundleModel):
    """``Embedder(bundle)(crops) -> float32 [N, D]`` unit vectors (cosine similarity = dot product)."""

    task = "embed"

    @property
    def dim(self) -> int:
        return self.bundle.description.embedding_dim

    def __call__(self, crops) -> np.ndarray:
        return self._run(crops)
