"""TensorRT backend for `Classifier(bundle, backend="tensorrt")`: runs an engine that
`lowres export BUNDLE --tensorrt` built from the bundle's TRT-ready graph, after the host
pre-processing (`host_preprocess.prepare`), and returns what the onnxruntime backend returns.

Engines are cached files keyed by GPU name + compute capability + TensorRT version + bundle
fingerprint + precision + batch profile; each file starts with that key, so a mismatch is
refused with what differs instead of a deserialisation crash. The runtime never builds engines
(that needs the `onnx` package and minutes): it refuses and says which command builds one.

Device memory goes through cuda-python (`cuda.bindings.runtime`), not pycuda: NVIDIA's TensorRT
samples moved to it, it ships binary wheels (pycuda compiles against a local CUDA toolkit at
install), and it needs no global context (pycuda.autoinit). tensorrt and cuda-python are
imported on first use only.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np

from ..errors import BackendError, BundleError

ENGINE_MAGIC = b"LOWRESTRT1"
DEFAULT_ENGINE_DIR = Path.home() / ".cache" / "lowres_sdk" / "engines"
PRECISIONS = {"fp32": "fp32", "fp16": "fp32", "int8": "int8"}  # engine precision -> the bundle variant it is built from
DEFAULT_PROFILE = (1, 16, 64)  # batch min / opt / max of the optimisation profile
INPUT_NAME = "pixels"


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            raise BackendError("backend='tensorrt' needs cuda-python and tensorrt: pip install 'lowres_sdk[tensorrt]' "
                               "on a machine with an NVIDIA GPU and driver") from None
    return cudart


def _cuda(result):
    """Unwrap cuda-python's (error, value...) tuples into the value or a BackendError."""
    cudart = _cudart()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        raise BackendError(f"CUDA call failed: {cudart.cudaGetErrorName(err)[1].decode()}")
    return values[0] if len(values) == 1 else values


def _tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise BackendError("backend='tensorrt' needs NVIDIA TensorRT >= 10: pip install 'lowres_sdk[tensorrt]' on a "
                           "machine with an NVIDIA GPU") from None
    if int(tensorrt.__version__.split(".")[0]) < 10:
        raise BackendError(f"TensorRT {tensorrt.__version__} found; lowres_sdk uses the TensorRT >= 10 tensor API")
    return tensorrt


def current_device() -> dict:
    """{"gpu": name, "compute_capability": "8.9"} of the current CUDA device."""
    cudart = _cudart()
    props = _cuda(cudart.cudaGetDeviceProperties(_cuda(cudart.cudaGetDevice())))
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return {"gpu": name.strip("\x00 "), "compute_capability": f"{props.major}.{props.minor}"}


def engine_key(*, device: dict, trt_version: str, fingerprint: str, precision: str,
               profile: tuple[int, int, int]) -> dict:
    if precision not in PRECISIONS:
        raise BackendError(f"TensorRT precision must be one of {list(PRECISIONS)}, got {precision!r}")
    lo, opt, hi = profile
    if not 1 <= lo <= opt <= hi:
        raise BackendError(f"batch profile must be 1 <= min <= opt <= max, got {profile}")
    return {"gpu": device["gpu"], "compute_capability": device["compute_capability"], "tensorrt": trt_version,
            "bundle_fingerprint": fingerprint, "precision": precision, "profile": [lo, opt, hi]}


def engine_path(engine_dir: str | os.PathLike, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(engine_dir) / f"{key['bundle_fingerprint'][:12]}-{key['precision']}-{digest}.engine"


def write_engine(path: str | os.PathLike, key: dict, engine: bytes) -> Path:
    """Key header + serialised engine, written to a temp file and renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = json.dumps(key, sort_keys=True).encode()
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(ENGINE_MAGIC + struct.pack("<I", len(header)) + header + bytes(engine))
    os.replace(tmp, path)
    return path


def read_engine(path: str | os.PathLike) -> tuple[dict, bytes]:
    data = Path(path).read_bytes()
    n = len(ENGINE_MAGIC)
    if data[:n] != ENGINE_MAGIC or len(data) < n + 4:
        raise BundleError(f"{path} is not a lowres_sdk TensorRT engine (no key header)")
    (size,) = struct.unpack("<I", data[n:n + 4])
    try:
        key = json.loads(data[n + 4:n + 4 + size])
    except ValueError as e:
        raise BundleError(f"{path}: damaged engine key header ({e})") from None
    return key, data[n + 4 + size:]


def find_engine(engine_dir: str | os.PathLike, key: dict) -> Path:
    """The cached engine for ``key``, or BackendError naming what the engines on disk were built
    for and the command that builds the missing one."""
    path = engine_path(engine_dir, key)
    if path.is_file():
        found, _ = read_engine(path)
        if found == key:
            return path
    near = []
    cached = Path(engine_dir).glob(f"{key['bundle_fingerprint'][:12]}-*.engine") if Path(engine_dir).is_dir() else []
    for other in sorted(cached):
        try:
            k, _ = read_engine(other)
        except BundleError:
            continue
        if k.get("bundle_fingerprint") == key["bundle_fingerprint"]:
            diff = [f"{f} {k.get(f)} (here {key[f]})" for f in key if k.get(f) != key[f]]
            near.append(f"{other.name}: built for " + ", ".join(diff))
    why = ("; the engines for this bundle there do not match: " + "; ".join(near)) if near else ""
    lo, opt, hi = key["profile"]
    raise BackendError(f"no TensorRT engine in {engine_dir} for this bundle on {key['gpu']} (sm "
                       f"{key['compute_capability']}, TensorRT {key['tensorrt']}, {key['precision']}, batch "
                       f"{lo}/{opt}/{hi}){why}. Build it with: lowres export BUNDLE --tensorrt --precision "
                       f"{key['precision']} --engine-dir {engine_dir}")


class TensorRTRunner:
    """One engine, one execution context, one CUDA stream; float32 pixels [N, 3, r, r] in, [N, K] out."""

    def __init__(self, bundle, precision: str = "fp16", engine_dir: str | os.PathLike | None = None,
                 profile: tuple[int, int, int] = DEFAULT_PROFILE):
        self.resolution = bundle.fixed_input_spec("the TensorRT backend").resolution  # before anything needs a GPU
        trt, cudart = _tensorrt(), _cudart()
        if precision == "int8" and "int8" not in bundle.variants:
            raise BundleError(f"{bundle.path} has no int8 model; export it with --int8 first")
        self.engine_dir = Path(engine_dir) if engine_dir else DEFAULT_ENGINE_DIR
        key = engine_key(device=current_device(), trt_version=trt.__version__, fingerprint=bundle.fingerprint,
                         precision=precision, profile=tuple(profile))
        _, blob = read_engine(find_engine(self.engine_dir, key))
        self._logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(self._logger).deserialize_cuda_engine(blob)
        if self.engine is None:
            raise BackendError(f"TensorRT could not deserialise {engine_path(self.engine_dir, key)}")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if INPUT_NAME not in names or len(outputs) != 1:
            raise BackendError(f"engine tensors {names}: expected input '{INPUT_NAME}' and one output")
        self.output = outputs[0]
        self.max_batch = profile[2]
        self.classes = len(bundle.labels) if bundle.task == "classify" else int(bundle.meta["embedding_dim"])
        self.stream = _cuda(cudart.cudaStreamCreate())
        in_bytes = self.max_batch * 3 * self.resolution ** 2 * 4
        self.d_in = _cuda(cudart.cudaMalloc(in_bytes))
        self.d_out = _cuda(cudart.cudaMalloc(self.max_batch * self.classes * 4))
        self.context.set_tensor_address(INPUT_NAME, int(self.d_in))
        self.context.set_tensor_address(self.output, int(self.d_out))

    def run(self, pixels: np.ndarray) -> np.ndarray:
        cudart = _cudart()
        out = np.empty((len(pixels), self.classes), np.float32)
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for start in range(0, len(pixels), self.max_batch):
            x = np.ascontiguousarray(pixels[start:start + self.max_batch], np.float32)
            y = out[start:start + len(x)]
            self.context.set_input_shape(INPUT_NAME, x.shape)
            _cuda(cudart.cudaMemcpyAsync(self.d_in, x.ctypes.data, x.nbytes, h2d, self.stream))
            if not self.context.execute_async_v3(int(self.stream)):
                raise BackendError("TensorRT execute_async_v3 failed")
            _cuda(cudart.cudaMemcpyAsync(y.ctypes.data, self.d_out, y.nbytes, d2h, self.stream))
            _cuda(cudart.cudaStreamSynchronize(self.stream))
        return out

    def __del__(self):
        if getattr(self, "stream", None) is None:  # construction failed before any CUDA allocation
            return
        cudart = _cudart()
        for ptr in (getattr(self, "d_in", None), getattr(self, "d_out", None)):
            if ptr is not None:
                cudart.cudaFree(ptr)
        cudart.cudaStreamDestroy(self.stream)
