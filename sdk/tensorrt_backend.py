"""Moved to `lowres_sdk.tensorrt.runner`; this path is kept for one release."""
from .tensorrt.runner import *  # noqa: F401,F403
