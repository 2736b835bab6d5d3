"""Moved to `lowres_sdk.serve.input`; this path is kept for one release."""
from .serve.input import *  # noqa: F401,F403
