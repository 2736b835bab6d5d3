"""`Recipe`: everything that defines a training run, saved inside its checkpoint. Core settings are its
own fields; each method's settings are an option group its file declares and the method table names
(`Recipe.options`), and the camera degradation's are `Recipe.camera`. Each setting carries its help
(and choices): `lowres train`'s options are generated from them, so a setting has one name, written once."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from lowres_sdk.errors import InputError
from lowres_sdk.spec import DOWN_MODES, FITS, UP_MODES, InputSpec

from .backbones import ARCHS
from .options import CameraOptions, NoOptions, OptionGroup, check_choices, option

DEFAULT_METHOD = "baseline"
GROUPS = ("camera", "options")  # the fields holding option groups; the others are the core settings


@dataclass(init=False)
class Recipe:
    """Everything that defines a training run; saved inside its checkpoint. Built from core settings and
    either flat names (``kd_alpha=0.5``, as `lowres train` and earlier versions spell them) or groups
    (``camera=CameraOptions(...)`` or a dict, ``options=`` or the method's name for its group)."""

    method: str = option(DEFAULT_METHOD, "Training method (see `lowres train --help`).")
    data: str = option("", "Dataset folder with train/<class>/ and test/<class>/, or a .tar.gz of one.")
    arch: str = option("resnet20", "Backbone.", tuple(ARCHS))
    width: float = option(1.0, "Channel width multiplier.")
    resolution: int = option(8, "Detail in px the model is trained for (ignored by highres, crossres, fsrgan).")
    input_mode: str = option("upsampled", "upsampled: LR image resized back to --image-size (paper setting); "
                                          "native: the net takes the LR size directly.", ("upsampled", "native"))
    image_size: int = option(32, "HR size the images are read at.")
    fit: str = option("stretch", "Non-square images: stretch to a square, or letterbox (pad with gray, aspect "
                                 "kept); the exported graph does the same to every crop.", FITS)
    epochs: int = option(10, "Training epochs.")
    batch_size: int = option(128, "Global batch size.")
    lr: float = option(0.1, "Peak learning rate (staged: the stage-2 rate; fsrgan uses --fsr-lr).")
    momentum: float = option(0.9, "SGD (Nesterov) momentum.")
    weight_decay: float = option(5e-4, "SGD weight decay.")
    schedule: str = option("cosine", "Learning-rate schedule: cosine or step (x0.1 at 50 % and 75 %) after "
                                     "--warmup-epochs; triangle, airbench94's, its own rise instead: 0.2 x lr up "
                                     "to lr at 20 % of the run, then linearly to 0.", ("cosine", "step", "triangle"))
    warmup_epochs: float = option(1.0, "Linear warm-up, in epochs (at most 10 % of the run).")
    norm_lr_scale: float = option(1.0, "BatchNorm parameters learn at lr x this, with weight decay / this (the "
                                       "same decay per step); airbench94 trains its BatchNorm shifts 64x faster "
                                       "than its convolutions.")
    seed: int = option(0, "Seed of every random draw (a resumed run replays them exactly).")
    augment: bool = option(True, "Random crop (4 px zero pad) + horizontal flip.")
    cutout: int = option(0, "Cutout (DeVries & Taylor 2017) after the crop and flip: per sample a square of this "
                            "many px (at --image-size, centred anywhere, clipped at the border) set to the "
                            "dataset mean; 0: off.")
    limit_per_class: int | None = option(None, "Use at most N images per class (quick runs).")
    train_fraction: float = option(1.0, "Train on the first fraction of each class (limited-data studies); the "
                                        "test split stays whole.")
    init: str | None = option(None, "Start from this run's weights (fine-tuning; a new head when the classes "
                                    "differ).")
    down: str = option("bilinear", "fixed degradation: antialiased downscale kernel to --resolution.", DOWN_MODES)
    up: str = option("bicubic", "Upscale kernel back to --image-size (upsampled mode).", UP_MODES)
    blur_sigma: float = option(0.0, "fixed degradation: Gaussian blur sigma before downsampling.")
    noise_std: float = option(0.0, "fixed degradation: Gaussian noise std at LR (0-1 scale).")
    jpeg_quality: int | None = option(None, "fixed degradation: JPEG quality at LR.")
    degradation: str = option("fixed", "fixed: one kernel (--down) to --resolution, the papers' setting; camera: "
                                       "per sample a random real kernel (OpenCV area/linear/cubic/nearest/Lanczos, "
                                       "Pillow bicubic/bilinear, ours), size in --camera-min..--camera-max, aspect "
                                       "and box jitter, blur, noise, JPEG.", ("fixed", "camera"))
    label_smoothing: float = option(0.0, "Cross-entropy label smoothing.")
    ema_decay: float = option(0.0, "> 0: keep an exponential moving average of the weights (e.g. 0.999); it is "
                                   "what evaluation, checkpoints' model and export use.")
    teacher: str | None = option(None, "A trained run: dfd/kd's teacher, staged's stage 1, the frozen network of "
                                       "transfer, sr and fsrgan.")
    camera: CameraOptions = field(default_factory=CameraOptions)
    options: OptionGroup = field(default_factory=NoOptions)

    def __init__(self, **settings):
        from .methods import METHODS, canonical  # the table imports the method files, which need no recipe

        self.method = canonical(settings.pop("method", DEFAULT_METHOD))
        for f in core_fields():
            if f.name != "method":
                setattr(self, f.name, settings.pop(f.name, f.default))
        self.camera = CameraOptions.build(settings.pop("camera", None), settings)
        group = METHODS[self.method].options
        given = [settings.pop(key) for key in ("options", self.method) if key in settings]
        self.options = group.build(given[0] if given else None, settings)
        for name in settings:
            owners = [m for m, entry in METHODS.items() if name in entry.options.flat_fields() or name == m]
            if owners:
                raise InputError(f"{name} is for --method {' / '.join(owners)}, not {self.method}")
            raise InputError(f"unknown recipe setting {name!r}")
        self._check()

    def _check(self) -> None:
        from .methods import METHODS

        if METHODS[self.method].any_resolution:  # models that take any query resolution at HR size
            self.resolution = self.image_size
        check_choices(self)
        if self.width <= 0 or self.image_size < 1:
            raise InputError(f"width and image_size must be positive, got {self.width}, {self.image_size}")
        if self.epochs < 1 or self.batch_size < 1:
            raise InputError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        if self.norm_lr_scale <= 0:
            raise InputError(f"norm_lr_scale must be > 0, got {self.norm_lr_scale}")
        if self.lr <= 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise InputError(f"need lr > 0, weight_decay >= 0, 0 <= momentum < 1; got {self.lr}, "
                             f"{self.weight_decay}, {self.momentum}")
        if not 1 <= self.resolution <= self.image_size:
            raise InputError(f"resolution {self.resolution} px must be between 1 and the image size "
                             f"{self.image_size} px")
        if not 0.0 < self.train_fraction <= 1.0:
            raise InputError(f"train_fraction must be in (0, 1], got {self.train_fraction}")
        if self.limit_per_class is not None and self.limit_per_class < 1:
            raise InputError(f"limit_per_class must be >= 1, got {self.limit_per_class}")
        if not 0 <= self.cutout <= self.image_size:
            raise InputError(f"cutout must be between 0 (off) and the image size {self.image_size} px, "
                             f"got {self.cutout}")
        if not 0.0 <= self.label_smoothing < 1.0 or not 0.0 <= self.ema_decay < 1.0:
            raise InputError(f"label_smoothing and ema_decay must be in [0, 1), got {self.label_smoothing}, "
                             f"{self.ema_decay}")

    @property
    def spec(self) -> InputSpec:
        size = self.resolution if self.input_mode == "native" else self.image_size
        return InputSpec(size=size, resolution=self.resolution, down=self.down, up=self.up, fit=self.fit)

    def to_dict(self) -> dict:
        """The saved form: the core settings, ``camera`` and the method's group under its name (when it has one)."""
        out = {f.name: getattr(self, f.name) for f in core_fields()}
        out["camera"] = {f.name: getattr(self.camera, f.name) for f in fields(self.camera)}
        if fields(self.options):
            out[self.method] = {f.name: getattr(self.options, f.name) for f in fields(self.options)}
        return out

    def flat(self) -> dict:
        """One level, one key per `lowres train` option: the form earlier versions saved."""
        core = {f.name: getattr(self, f.name) for f in core_fields()}
        return {**core, **self.camera.flat(), **self.options.flat()}

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        """A recipe from saved JSON, nested (`to_dict`) or flat (`flat`, as earlier versions saved it, with
        every method's settings). Other methods' settings and keys this version does not know are ignored,
        missing ones take their defaults (so checkpoints of older versions still resume)."""
        from .methods import METHODS, canonical

        if not isinstance(d, dict):
            raise InputError(f"a recipe must be a JSON object, got {type(d).__name__}")
        method = canonical(d.get("method", DEFAULT_METHOD))
        known = {f.name for f in core_fields()} | {"camera", method} | set(CameraOptions.flat_fields())
        known |= set(METHODS[method].options.flat_fields())
        kept = {k: v for k, v in d.items() if k in known}
        for key, group in (("camera", CameraOptions), (method, METHODS[method].options)):
            if isinstance(kept.get(key), dict):  # a group's settings this version does not know are ignored too
                kept[key] = {k: v for k, v in kept[key].items() if k in {f.name for f in fields(group)}}
        return cls(**{**kept, "method": method})

    def differences(self, other: "Recipe") -> list[str]:
        """Setting-by-setting differences, for 'different recipe' errors that say what differs."""
        a, b = self.flat(), other.flat()
        return [f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in {**a, **b} if a.get(k) != b.get(k)]


def core_fields() -> list:
    """The fields of `Recipe` that are settings of every run (not option groups)."""
    return [f for f in fields(Recipe) if f.name not in GROUPS]
