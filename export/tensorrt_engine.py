"""Moved to `lowres_sdk.tensorrt.engine`; this path is kept for one release."""
from lowres_sdk.tensorrt.engine import *  # noqa: F401,F403
