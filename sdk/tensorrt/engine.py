"""TensorRT engines for a bundle: `lowres export BUNDLE --tensorrt`. The TRT-ready graph
(`graph.trt_ready`, no antialiased Resize) is parsed with the TensorRT >= 10 API, built with
one optimisation profile over the batch, and cached under the key `runner.engine_key`
describes. FP16 from model.onnx; INT8 from the bundle's Q/DQ model.int8.onnx (explicit
quantization: TensorRT 10 deprecates the implicit-INT8 calibrators). A timing cache per GPU and
TensorRT version makes rebuilds (another precision, another profile) fast.
tensorrt / cuda-python are imported lazily: without them `require_tensorrt` says what to install.
"""
from __future__ import annotations

import os
from pathlib import Path

import onnx

from ..bundle import Bundle
from ..errors import BackendError, ExportError
from .graph import trt_ready
from .runner import (DEFAULT_ENGINE_DIR, DEFAULT_PROFILE, INPUT_NAME, PRECISIONS, current_device, engine_key,
                     engine_path, read_engine, write_engine)

WORKSPACE_BYTES = 1 << 30


def require_tensorrt():
    """Import and return the tensorrt module (>= 10), or raise ExportError with what to do."""
    try:
        import tensorrt
    except ImportError:
        raise ExportError("--tensorrt needs NVIDIA TensorRT >= 10 and cuda-python: pip install 'lowres_sdk[tensorrt]' "
                          "on a machine with an NVIDIA GPU and driver (not installed here)") from None
    if int(tensorrt.__version__.split(".")[0]) < 10:
        raise ExportError(f"TensorRT {tensorrt.__version__} is installed; engines need TensorRT >= 10")
    return tensorrt


def _timing_cache_path(engine_dir: Path, key: dict) -> Path:
    gpu = "".join(c if c.isalnum() else "_" for c in key["gpu"])
    return engine_dir / f"timing-{gpu}-sm{key['compute_capability']}-trt{key['tensorrt']}.cache"


def build_engine(bundle: Bundle, precision: str = "fp16", *, engine_dir: str | os.PathLike | None = None,
                 profile: tuple[int, int, int] = DEFAULT_PROFILE, rebuild: bool = False, log=print) -> Path:
    """Build (or find, unless ``rebuild``) the engine of ``bundle`` for this GPU; returns its path."""
    resolution = bundle.fixed_input_spec("a TensorRT engine").resolution  # before anything needs a GPU
    trt = require_tensorrt()
    try:
        key = engine_key(device=current_device(), trt_version=trt.__version__, fingerprint=bundle.fingerprint,
                         precision=precision, profile=tuple(profile))
    except BackendError as e:
        raise ExportError(str(e)) from None
    engine_dir = Path(engine_dir) if engine_dir else DEFAULT_ENGINE_DIR
    path = engine_path(engine_dir, key)
    if path.is_file() and not rebuild and read_engine(path)[0] == key:
        log(f"TensorRT {precision} engine up to date: {path}")
        return path
    source = PRECISIONS[precision]
    if source not in bundle.variants:
        raise ExportError(f"{bundle.path} has no model.int8.onnx: export the run with --int8 for an INT8 engine")
    model = trt_ready(onnx.load(str(bundle.file(bundle.variants[source]))), resolution)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.SerializeToString()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT's ONNX parser refused the TRT-ready graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # int8: the layers Q/DQ leave in float run in FP16
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # scales come from the graph's Q/DQ nodes, no calibrator
    r = resolution
    lo, opt, hi = profile
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(INPUT_NAME, (lo, 3, r, r), (opt, 3, r, r), (hi, 3, r, r))
    config.add_optimization_profile(opt_profile)
    timing_path = _timing_cache_path(engine_dir, key)
    cache = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    log(f"building TensorRT {precision} engine on {key['gpu']} (TensorRT {key['tensorrt']}, batch {lo}/{opt}/{hi})")
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise ExportError(f"TensorRT could not build the {precision} engine (see the TensorRT log above)")
    engine_dir.mkdir(parents=True, exist_ok=True)
    tmp = timing_path.with_name(f".{timing_path.name}.tmp")
    tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    os.replace(tmp, timing_path)
    write_engine(path, key, blob)
    log(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return path
