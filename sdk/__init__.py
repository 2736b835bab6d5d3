"""lowres_sdk: recognise things in very low-resolution crops.

``from lowres_sdk import Classifier; Classifier("bundle/")(crops)``. Importing it pulls numpy
only (onnxruntime loads with the first model); training (``lowres_sdk.training``) and export
(``lowres_sdk.export``) need torch and are imported explicitly.
"""
from ._version import __version__
from .errors import (BundleError, CheckpointError, DataError, ExportError, InputError, LowresError, OutputError,
                     SourceError)
from .bundle import Bundle, load_bundle
from .gallery import Gallery
from .runtime import Classifier, Embedder, Predictions
from .spec import InputSpec

__all__ = [
    "__version__",
    "Classifier",
    "Embedder",
    "Predictions",
    "Gallery",
    "Bundle",
    "load_bundle",
    "InputSpec",
    "LowresError",
    "InputError",
    "DataError",
    "CheckpointError",
    "BundleError",
    "ExportError",
    "OutputError",
    "SourceError",
]
