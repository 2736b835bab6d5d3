"""`Recipe`: everything that defines a training run, saved inside its checkpoint. Each field carries
its own help (and choices) in its metadata: `lowres train`'s options are generated from it, so a
setting has one name, written once."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from lowres_sdk.errors import InputError
from lowres_sdk.spec import DOWN_MODES, FITS, UP_MODES, InputSpec

from .degrade import KERNELS

ARCH_NAMES = ("resnet20", "resnet32", "resnet56", "resnet18", "mobilenet", "airnet", "airnet-prepool", "airnet-prepool1", "airbench")


def _f(default, help: str, choices: tuple | None = None):
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class Recipe:
    """Everything that defines a training run; saved inside its checkpoint."""

    method: str = _f("lr", "Training method (see `lowres train --help`).")
    data: str = _f("", "Dataset folder with train/<class>/ and test/<class>/, or a .tar.gz of one.")
    arch: str = _f("resnet20", "Backbone.", ARCH_NAMES)
    width: float = _f(1.0, "Channel width multiplier.")
    resolution: int = _f(8, "Detail in px the model is trained for (ignored by hr, crossres, fsrgan).")
    input_mode: str = _f("upsampled", "upsampled: LR image resized back to --image-size (paper setting); "
                                      "native: the net takes the LR size directly.", ("upsampled", "native"))
    image_size: int = _f(32, "HR size the images are read at.")
    fit: str = _f("stretch", "Non-square images: stretch to a square, or letterbox (pad with gray, aspect kept); "
                             "the exported graph does the same to every crop.", FITS)
    epochs: int = _f(10, "Training epochs.")
    batch_size: int = _f(128, "Global batch size.")
    lr: float = _f(0.1, "Peak learning rate (staged: the stage-2 rate; fsrgan uses --fsr-lr).")
    momentum: float = _f(0.9, "SGD (Nesterov) momentum.")
    weight_decay: float = _f(5e-4, "SGD weight decay.")
    schedule: str = _f("cosine", "Learning-rate schedule: cosine or step (x0.1 at 50 % and 75 %) after --warmup-epochs; "
                                 "triangle, airbench94's, its own rise instead: 0.2 x lr up to lr at 20 % of the run, then linearly to 0.",
                       ("cosine", "step", "triangle"))
    warmup_epochs: float = _f(1.0, "Linear warm-up, in epochs (at most 10 % of the run).")
    norm_lr_scale: float = _f(1.0, "BatchNorm parameters learn at lr x this, with weight decay / this (the same decay per "
                                   "step); airbench94 trains its BatchNorm shifts 64x faster than its convolutions.")
    seed: int = _f(0, "Seed of every random draw (a resumed run replays them exactly).")
    augment: bool = _f(True, "Random crop (4 px zero pad) + horizontal flip.")
    cutout: int = _f(0, "Cutout (DeVries & Taylor 2017) after the crop and flip: per sample a square of this many px "
                       "(at --image-size, centred anywhere, clipped at the border) set to the dataset mean; 0: off.")
    limit_per_class: int | None = _f(None, "Use at most N images per class (quick runs).")
    train_fraction: float = _f(1.0, "Train on the first fraction of each class (limited-data studies); the test split stays whole.")
    init: str | None = _f(None, "Start from this run's weights (fine-tuning; a new head when the classes differ).")
    down: str = _f("bilinear", "fixed degradation: antialiased downscale kernel to --resolution.", DOWN_MODES)
    up: str = _f("bicubic", "Upscale kernel back to --image-size (upsampled mode).", UP_MODES)
    blur_sigma: float = _f(0.0, "fixed degradation: Gaussian blur sigma before downsampling.")
    noise_std: float = _f(0.0, "fixed degradation: Gaussian noise std at LR (0-1 scale).")
    jpeg_quality: int | None = _f(None, "fixed degradation: JPEG quality at LR.")
    degradation: str = _f("fixed", "fixed: one kernel (--down) to --resolution, the papers' setting; camera: per sample a "
                                   "random real kernel (OpenCV area/linear/cubic/nearest/Lanczos, Pillow bicubic/bilinear, "
                                   "ours), size in --camera-min..--camera-max, aspect and box jitter, blur, noise, JPEG.",
                          ("fixed", "camera"))
    camera_min: int = _f(6, "camera: smallest crop long side (px).")
    camera_max: int = _f(32, "camera: largest crop long side (px).")
    camera_aspect: float = _f(2.5, "camera: square objects (CIFAR) are cut / stretched to aspects in [1/r, r] "
                                   "(1: kept square, as a square test set is).")
    camera_box_jitter: float = _f(0.2, "camera: box sides scaled by 1 +- this and shifted by half of it (loose motion boxes).")
    camera_realism: float = _f(1.0, "camera: scale of the optics / sensor / codec probabilities (1: defocus 25 % + motion "
                                    "blur 10 %, noise 50 %, JPEG 40 % of samples; 0: kernels, sizes and boxes only).")
    camera_kernels: str = _f("", "camera: the downscale kernels drawn from, comma-separated, uniformly; a name listed twice is "
                                 "drawn twice as often (empty: all of " + ", ".join(KERNELS) + ").")
    label_smoothing: float = _f(0.0, "Cross-entropy label smoothing.")
    ema_decay: float = _f(0.0, "> 0: keep an exponential moving average of the weights (e.g. 0.999); it is what "
                               "evaluation, checkpoints' model and export use.")
    teacher: str | None = _f(None, "A trained run: dfd/kd's teacher, staged's stage 1, the frozen network of transfer, sr and fsrgan.")
    dfd_lambda: float = _f(2.0, "dfd: weight of the feature loss (paper 002: 2).")
    init_from_teacher: bool = _f(True, "dfd: start the student from the teacher's weights (the paper's fine-tuning).")
    cache_teacher: bool = _f(False, "dfd: precompute teacher features once (needs --no-augment).")
    kd_alpha: float = _f(0.9, "kd: weight of the distillation term (1 - alpha on the labels).")
    kd_tau: float = _f(4.0, "kd: softmax temperature of teacher and student.")
    kd_same_view: bool = _f(False, "kd: the teacher sees the student's own degraded crop (consistent views) instead of "
                                   "the HR image; needs a teacher with the student's input size and normalisation.")
    kd_teachers: str = _f("", "kd: further teacher runs, comma-separated: an ensemble teacher, whose softened outputs "
                              "(each teacher's at --kd-tau) are averaged with --teacher's.")
    kd_targets: str = _f("", "kd: a file of precomputed teacher logits for every training image (`lowres kd-targets` makes one "
                             "from one run or an ensemble), used in place of --teacher.")
    trainable: str = _f("all", "staged: what stage 2 fine-tunes: 'all', or parameter-name prefixes like 'fc' or 'layers.8,fc'.")
    mixed_ratio: float = _f(0.5, "mixed: probability that a training image is degraded to --resolution (else kept HR).")
    clusters: int = _f(50, "transfer: k-means clusters = pseudo-classes = transferred feature dim.")
    transfer_hidden: int = _f(256, "transfer: hidden width of the 2-layer transfer net.")
    transfer_labels: str = _f("nearest", "transfer: an LR feature's pseudo-label: its nearest HR centroid (paper 000), "
                                         "or the cluster of its own HR image (paired).", ("nearest", "paired"))
    sr_width: int = _f(64, "sr: channels of the ESPCN SR net.")
    crossres_p: float = _f(0.5, "crossres: probability that a training image is downsampled (paper 003 tries 0.1-1.0).")
    query_min: int = _f(8, "crossres/fsrgan: smallest random LR resolution (px) a training image is shrunk to.")
    query_max: int = _f(24, "crossres/fsrgan: largest random LR resolution (px).")
    fsr_lr: float = _f(8e-4, "fsrgan: Adam learning rate of G and D (paper 004).")
    fsr_critic_steps: int = _f(5, "fsrgan: WGAN critic updates per generator update.")
    fsr_clip: float = _f(0.01, "fsrgan: the critic's weights are clipped to [-c, c] (WGAN's Lipschitz constraint).")
    fsr_views: int = _f(4, "fsrgan: LR views (random resolutions in --query-min..--query-max) per training image.")

    def __post_init__(self):
        from .methods import METHODS  # the table names the methods; it imports no recipe at module level

        if self.method not in METHODS:
            raise InputError(f"unknown method {self.method!r}; expected one of {', '.join(METHODS)}")
        if METHODS[self.method].any_resolution:  # models that take any query resolution at HR size
            self.resolution = self.image_size
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise InputError(f"{f.name} must be one of {', '.join(choices)}; got {getattr(self, f.name)!r}")
        if self.width <= 0 or self.image_size < 1:
            raise InputError(f"width and image_size must be positive, got {self.width}, {self.image_size}")
        if not 1 <= self.resolution <= self.image_size:
            raise InputError(f"resolution {self.resolution} px must be between 1 and the image size {self.image_size} px")
        if not 0.0 < self.train_fraction <= 1.0:
            raise InputError(f"train_fraction must be in (0, 1], got {self.train_fraction}")
        if self.limit_per_class is not None and self.limit_per_class < 1:
            raise InputError(f"limit_per_class must be >= 1, got {self.limit_per_class}")
        if self.epochs < 1 or self.batch_size < 1:
            raise InputError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        if self.norm_lr_scale <= 0:
            raise InputError(f"norm_lr_scale must be > 0, got {self.norm_lr_scale}")
        if self.lr <= 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise InputError(f"need lr > 0, weight_decay >= 0, 0 <= momentum < 1; got {self.lr}, {self.weight_decay}, {self.momentum}")
        if not 0 <= self.cutout <= self.image_size:
            raise InputError(f"cutout must be between 0 (off) and the image size {self.image_size} px, got {self.cutout}")
        if not 1 <= self.camera_min <= self.camera_max:
            raise InputError(f"camera sizes need 1 <= camera_min <= camera_max, got {self.camera_min}, {self.camera_max}")
        if self.camera_aspect < 1.0 or not 0.0 <= self.camera_box_jitter < 1.0:
            raise InputError(f"need camera_aspect >= 1 and 0 <= camera_box_jitter < 1, got {self.camera_aspect}, {self.camera_box_jitter}")
        if not 0.0 <= self.camera_realism <= 2.0:
            raise InputError(f"camera_realism must be in [0, 2] (it scales probabilities), got {self.camera_realism}")
        unknown = [k for k in self.camera_kernel_list if k not in KERNELS]
        if unknown:
            raise InputError(f"camera_kernels: unknown kernel(s) {', '.join(unknown)}; expected some of {', '.join(KERNELS)}")
        if self.kd_targets and self.method != "kd":
            raise InputError(f"kd_targets is for --method kd, not {self.method}")
        if not 0.0 <= self.label_smoothing < 1.0 or not 0.0 <= self.ema_decay < 1.0:
            raise InputError(f"label_smoothing and ema_decay must be in [0, 1), got {self.label_smoothing}, {self.ema_decay}")

    @property
    def camera_kernel_list(self) -> tuple[str, ...]:
        """The camera's kernel draw (repeats weight a kernel); all kernels once when none are named."""
        named = tuple(k.strip() for k in self.camera_kernels.split(",") if k.strip())
        return named or KERNELS

    @property
    def spec(self) -> InputSpec:
        size = self.resolution if self.input_mode == "native" else self.image_size
        return InputSpec(size=size, resolution=self.resolution, down=self.down, up=self.up, fit=self.fit)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        """A recipe from saved JSON; keys this version does not know are ignored, missing ones take
        their defaults (so checkpoints of older versions still resume)."""
        if not isinstance(d, dict):
            raise InputError(f"a recipe must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in known})
        except TypeError as e:
            raise InputError(f"invalid recipe: {e}") from e

    def differences(self, other: "Recipe") -> list[str]:
        """Field-by-field differences, for 'different recipe' errors that say what differs."""
        a, b = asdict(self), asdict(other)
        return [f"{k}: {a[k]!r} != {b[k]!r}" for k in a if a[k] != b[k]]
