"""Moved to `lowres_sdk.serve.batcher`; this path is kept for one release."""
from .serve.batcher import *  # noqa: F401,F403
