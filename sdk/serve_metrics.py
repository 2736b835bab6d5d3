"""Moved to `lowres_sdk.serve.metrics`; this path is kept for one release."""
from .serve.metrics import *  # noqa: F401,F403
