"""TensorRT engines for a bundle (issue 4, GPU part). tensorrt/pycuda are imported lazily: without
them, `require_tensorrt` says what to install instead of failing at import time."""
from __future__ import annotations

from lowres_sdk.errors import ExportError


def require_tensorrt():
    """Import and return the tensorrt module, or raise ExportError with what to do."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        raise ExportError("--tensorrt needs NVIDIA TensorRT: pip install 'lowres_sdk[tensorrt]' on a machine with an "
                          "NVIDIA GPU and driver (not installed here)") from None
    raise ExportError("TensorRT engine building is not implemented yet in this version (tracked in issue 4)")
