"""Moved to `lowres_sdk.video.prefetch`; this path is kept for one release."""
from .video.prefetch import *  # noqa: F401,F403
