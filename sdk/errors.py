"""The exceptions lowres_sdk raises: one base class, a subclass per kind of fault.

Messages say what was expected and what was given, so the CLI can print them as one line.
"""


class LowresError(Exception):
    """Base class of every error lowres_sdk raises on purpose."""


class InputError(LowresError, ValueError):
    """An argument or an array handed to lowres_sdk is not what it accepts."""


class DataError(LowresError):
    """A dataset on disk is missing, empty, unreadable or fails verification."""


class CheckpointError(LowresError):
    """A training run or checkpoint is missing, corrupt, or does not fit its use."""


class BundleError(LowresError):
    """A deployable bundle is missing, corrupt, or does not verify."""


class ExportError(LowresError):
    """A model cannot be exported, or its export fails a check (parity, INT8 accuracy)."""


class SourceError(LowresError):
    """A video source cannot be opened or read."""


class OutputError(LowresError):
    """An output path cannot be written, or holds something lowres_sdk will not replace."""


class BackendError(LowresError):
    """A backend cannot run here (no GPU, no engine for this GPU, missing package)."""
