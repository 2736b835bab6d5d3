"""Moved to `lowres_sdk.video.tracking`; this path is kept for one release."""
from .video.tracking import *  # noqa: F401,F403
