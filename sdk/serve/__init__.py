"""`lowres serve`: an HTTP app (``app``) over a micro-batcher (``batcher``), with request parsing and
limits (``input``) and Prometheus-style counters (``metrics``). FastAPI is imported only by ``app``,
loaded on first use of its names, so the batcher serves runtime-only installs (many video streams)."""
import importlib

__all__ = ["ServeConfig", "create_app", "serve_command", "split_output"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module(".app", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
