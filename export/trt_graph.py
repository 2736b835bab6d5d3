"""Moved to `lowres_sdk.tensorrt.graph`; this path is kept for one release."""
from lowres_sdk.tensorrt.graph import *  # noqa: F401,F403
