"""lowres_sdk: recognise things in very low-resolution crops.

Importing it pulls numpy only; training (``lowres_sdk.training``) and export
(``lowres_sdk.export``) need torch and are imported explicitly.
"""
from ._version import __version__
from .errors import BundleError, CheckpointError, DataError, ExportError, InputError, LowresError, SourceError
from .spec import InputSpec

__all__ = [
    "__version__",
    "InputSpec",
    "LowresError",
    "InputError",
    "DataError",
    "CheckpointError",
    "BundleError",
    "ExportError",
    "SourceError",
]
