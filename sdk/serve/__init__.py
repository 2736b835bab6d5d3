"""`lowres serve`: an HTTP app (``app``) over a micro-batcher (``batcher``), with request parsing and
limits (``input``) and Prometheus-style counters (``metrics``). FastAPI is imported only here."""
from .app import ServeConfig, create_app, serve_command, split_output

__all__ = ["ServeConfig", "create_app", "serve_command", "split_output"]
