"""Moved to `lowres_sdk.video.regions`; this path is kept for one release."""
from .video.regions import *  # noqa: F401,F403
