"""The input contract of a model: what size, channel order and normalisation it expects.

It travels with the weights (checkpoint JSON) and later with the bundle, so nothing downstream
guesses a mean, a size or an interpolation. Plain data, no torch.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .errors import InputError

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)

DOWN_MODES = ("area", "bilinear")  # both antialiased when shrinking
UP_MODES = ("bicubic", "bilinear")
FITS = ("stretch", "letterbox")
LETTERBOX_FILL = 128  # gray, as uint8; the fill of padded borders in training data and in the graph


@dataclass(frozen=True)
class InputSpec:
    """How a raw RGB crop becomes the tensor the network sees.

    ``size`` is the network's input side in pixels. ``resolution`` is the detail the model was
    trained for: the crop is first resized to ``resolution`` (``down`` interpolation,
    antialiased) and, when ``resolution < size``, resized back up to ``size`` (``up``
    interpolation) -- the paper's "upsampled LR" setting. Non-square crops are first made square
    by ``fit``: "stretch" (resize as is) or "letterbox" (centre on a gray square, aspect kept).
    ``resolution == size`` is a plain resize, which is also how a *native* low-res network (``size`` 8
    or 16) is fed.
    """

    size: int = 32
    resolution: int = 32
    mean: tuple[float, float, float] = CIFAR_MEAN
    std: tuple[float, float, float] = CIFAR_STD
    channel_order: str = "RGB"
    down: str = "bilinear"
    up: str = "bicubic"
    value_range: tuple[float, float] = field(default=(0.0, 1.0))
    fit: str = "stretch"  # non-square crops: "stretch" to a square, or "letterbox" (pad to square with gray first)

    def __post_init__(self):
        if self.size < 1 or self.resolution < 1:
            raise InputError(f"sizes must be positive, got size={self.size} resolution={self.resolution}")
        if self.resolution > self.size:
            raise InputError(
                f"resolution {self.resolution} px is larger than the model input {self.size} px"
            )
        if self.down not in DOWN_MODES:
            raise InputError(f"down interpolation must be one of {DOWN_MODES}, got {self.down!r}")
        if self.up not in UP_MODES:
            raise InputError(f"up interpolation must be one of {UP_MODES}, got {self.up!r}")
        if self.fit not in FITS:
            raise InputError(f"fit must be one of {FITS}, got {self.fit!r}")
        if self.channel_order not in ("RGB", "BGR"):
            raise InputError(f"channel_order must be RGB or BGR, got {self.channel_order!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "InputSpec":
        d = dict(d)
        for key in ("mean", "std", "value_range"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)
