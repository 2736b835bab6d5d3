"""How a recipe's settings are declared: `option` (a field with its help, choices and flat name), and
`OptionGroup`, the settings of one method or of the camera degradation, owned by the file that uses them.

A setting's flat name (``kd_alpha``, ``camera_min``) is its `lowres train` option and its key in the
one-level recipes saved by earlier versions; inside its group it is just ``alpha`` or ``min``."""
from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from typing import ClassVar

from lowres_sdk.errors import InputError

from .degrade import KERNELS


def option(default, help: str, choices: tuple | None = None, flat: str | None = None,
           within: tuple[float, float] | None = None):
    """A recipe setting: ``flat`` names it where the group's prefix + its name would not (``dfd_lambda``);
    ``choices`` or the closed interval ``within`` are the values it may take."""
    return field(default=default, metadata={"help": help, "choices": choices, "flat": flat, "within": within})


def check_choices(settings) -> None:
    """InputError (naming the setting by its flat name) for a setting of dataclass ``settings`` outside the
    choices or the interval its field declares."""
    flat = {f.name: name for name, f in settings.flat_fields().items()} if isinstance(settings, OptionGroup) else {}
    for f in fields(settings):
        value, name = getattr(settings, f.name), flat.get(f.name, f.name)
        choices, within = f.metadata.get("choices"), f.metadata.get("within")
        if choices and value not in choices:
            raise InputError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
        if within and not within[0] <= value <= within[1]:
            raise InputError(f"{name} must be in [{within[0]:g}, {within[1]:g}], got {value}")


@dataclass
class OptionGroup:
    """A group of settings; ``prefix`` + '_' + a field's name is its flat name unless the field names one."""

    prefix: ClassVar[str] = ""

    def __post_init__(self):
        check_choices(self)
        self.check()

    def check(self) -> None:
        """InputError for values that are each allowed but do not go together (subclasses say which)."""

    @classmethod
    def flat_fields(cls) -> dict[str, Field]:
        """Flat name -> field, in declaration order."""
        return {f.metadata.get("flat") or (f"{cls.prefix}_{f.name}" if cls.prefix else f.name): f for f in fields(cls)}

    def flat(self) -> dict:
        return {name: getattr(self, f.name) for name, f in self.flat_fields().items()}

    @classmethod
    def build(cls, given, flat: dict) -> "OptionGroup":
        """The group from ``given`` (an instance, a dict by field name, or None for the defaults), with
        the flat names in ``flat`` applied on top; the flat names used are popped from ``flat``."""
        if given is not None and not isinstance(given, (cls, dict)):
            raise InputError(f"{cls.__name__} expected, got {type(given).__name__}")
        values = dict(given) if isinstance(given, dict) else {}
        if isinstance(given, cls):
            values = {f.name: getattr(given, f.name) for f in fields(cls)}
        for name, f in cls.flat_fields().items():
            if name in flat:
                values[f.name] = flat.pop(name)
        try:
            return cls(**values)
        except TypeError as e:
            raise InputError(f"invalid {cls.__name__}: {e}") from e


@dataclass
class NoOptions(OptionGroup):
    """The group of a method with no settings of its own."""


@dataclass
class QuerySizes(OptionGroup):
    """The random LR sizes a training image is shrunk to, for methods that take any query size."""

    query_min: int = option(8, "smallest random LR resolution (px) a training image is shrunk to.", flat="query_min")
    query_max: int = option(24, "largest random LR resolution (px).", flat="query_max")

    def check_sizes(self, method: str, image_size: int) -> None:
        if not 1 <= self.query_min <= self.query_max <= image_size:
            raise InputError(f"{method} needs 1 <= query_min <= query_max <= image_size, got {self.query_min}, "
                             f"{self.query_max}, {image_size}")


@dataclass
class CameraOptions(OptionGroup):
    """The camera degradation's draws (``degradation="camera"``): sizes, aspects, boxes, optics, kernels."""

    prefix: ClassVar[str] = "camera"
    min: int = option(6, "smallest crop long side (px).")
    max: int = option(32, "largest crop long side (px).")
    aspect: float = option(2.5, "square objects (CIFAR) are cut / stretched to aspects in [1/r, r] "
                                "(1: kept square, as a square test set is).")
    box_jitter: float = option(0.2, "box sides scaled by 1 +- this and shifted by half of it (loose motion boxes).")
    realism: float = option(1.0, "scale of the optics / sensor / codec probabilities (1: defocus 25 % + motion "
                                 "blur 10 %, noise 50 %, JPEG 40 % of samples; 0: kernels, sizes and boxes only).")
    kernels: str = option("", "the downscale kernels drawn from, comma-separated, uniformly; a name listed twice "
                              "is drawn twice as often (empty: all of " + ", ".join(KERNELS) + ").")

    def check(self) -> None:
        if not 1 <= self.min <= self.max:
            raise InputError(f"camera sizes need 1 <= camera_min <= camera_max, got {self.min}, {self.max}")
        if self.aspect < 1.0 or not 0.0 <= self.box_jitter < 1.0:
            raise InputError(f"need camera_aspect >= 1 and 0 <= camera_box_jitter < 1, got {self.aspect}, "
                             f"{self.box_jitter}")
        if not 0.0 <= self.realism <= 2.0:
            raise InputError(f"camera_realism must be in [0, 2] (it scales probabilities), got {self.realism}")
        unknown = [k for k in self.kernel_list if k not in KERNELS]
        if unknown:
            raise InputError(f"camera_kernels: unknown kernel(s) {', '.join(unknown)}; expected some of "
                             f"{', '.join(KERNELS)}")

    @property
    def kernel_list(self) -> tuple[str, ...]:
        """The kernel draw (repeats weight a kernel); all kernels once when none are named."""
        named = tuple(k.strip() for k in self.kernels.split(",") if k.strip())
        return named or KERNELS
