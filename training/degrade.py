"""HR -> LR degradation, as one torch module used by training, evaluation and the exported graph.

Resizing goes through `resize` only, so the pixels a model is trained on are the pixels the
deployed graph computes. Blur / noise / JPEG are optional training-time realism on top.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lowres_sdk.errors import InputError
from lowres_sdk.host_preprocess import to_resolution
from lowres_sdk.spec import DOWN_MODES, LETTERBOX_FILL, UP_MODES, InputSpec


def resize(x: torch.Tensor, size: int, down: str = "bilinear", up: str = "bicubic") -> torch.Tensor:
    """Resize NCHW float images in [0, 1] to ``size`` x ``size``.

    Shrinking uses ``down`` with antialiasing ("area" averages pixels, "bilinear" is the
    antialiased triangle filter PIL uses); enlarging uses ``up`` and clamps bicubic overshoot.
    An axis already at ``size`` is left untouched.
    """
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if size <= min(h, w):
        if down == "area":
            return F.adaptive_avg_pool2d(x, size)
        return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    if size >= max(h, w):
        y = F.interpolate(x, size=(size, size), mode=up, align_corners=False)
        return y.clamp(0.0, 1.0) if up == "bicubic" else y
    # One axis shrinks, the other grows: antialiased bilinear handles both directions.
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


class Degrade(nn.Module):
    """Take NCHW float RGB in [0, 1] at any size to ``resolution`` px, then to ``out_size`` px.

    ``out_size`` None keeps the native LR size; ``out_size > resolution`` is the paper's
    "downsample, then upsample back to the model input" setting. Realism (applied in that order):
    Gaussian ``blur_sigma`` before shrinking (optics), additive Gaussian ``noise_std`` and
    ``jpeg_quality`` compression at the LR size (sensor, codec). Random parts draw from the
    ``generator`` passed to ``forward``, so a seeded run is reproducible.
    """

    def __init__(self, resolution: int, out_size: int | None = None, down: str = "bilinear",
                 up: str = "bicubic", blur_sigma: float = 0.0, noise_std: float = 0.0,
                 jpeg_quality: int | None = None):
        super().__init__()
        if resolution < 1:
            raise InputError(f"resolution must be >= 1 px, got {resolution}")
        if out_size is not None and out_size < resolution:
            raise InputError(f"out_size {out_size} is smaller than resolution {resolution}")
        if down not in DOWN_MODES or up not in UP_MODES:
            raise InputError(f"interpolation must be down in {DOWN_MODES}, up in {UP_MODES}; got {down!r}, {up!r}")
        if jpeg_quality is not None and not 1 <= jpeg_quality <= 100:
            raise InputError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
        self.resolution, self.out_size = resolution, out_size
        self.down, self.up = down, up
        self.blur_sigma, self.noise_std, self.jpeg_quality = blur_sigma, noise_std, jpeg_quality
        if blur_sigma > 0:
            self.register_buffer("blur_kernel", _gaussian_kernel(blur_sigma), persistent=False)

    @property
    def is_deterministic(self) -> bool:
        return self.noise_std == 0 and self.jpeg_quality is None

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.blur_sigma > 0:
            x = self._blur(x)
        x = resize(x, self.resolution, self.down, self.up)
        if self.noise_std > 0:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = (x + self.noise_std * noise).clamp_(0.0, 1.0)
        if self.jpeg_quality is not None:
            x = _jpeg(x, self.jpeg_quality)
        if self.out_size is not None:
            x = resize(x, self.out_size, self.down, self.up)
        return x

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        k = self.blur_kernel.to(x.dtype)
        c, r = x.shape[1], k.numel() // 2
        x = F.pad(x, (r, r, r, r), mode="reflect")
        x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)

    def extra_repr(self) -> str:
        return (f"resolution={self.resolution}, out_size={self.out_size}, down={self.down}, up={self.up}, "
                f"blur_sigma={self.blur_sigma}, noise_std={self.noise_std}, jpeg_quality={self.jpeg_quality}")


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    # JPEG is not a tensor op: round-trip each image through OpenCV's codec (training only).
    arr = (x.detach().permute(0, 2, 3, 1).cpu().numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
    out = np.empty_like(arr)
    for i, img in enumerate(arr):
        out[i] = jpeg_roundtrip(img[:, :, ::-1], quality)[:, :, ::-1]
    return torch.from_numpy(out).to(x.device, x.dtype).permute(0, 3, 1, 2) / 255.0


def sensor_noise(img: np.ndarray, read_sigma: float, shot: float, rng: np.random.Generator) -> np.ndarray:
    """uint8 ``img`` with Gaussian read noise (sigma ``read_sigma`` of 255) and shot noise (variance
    ``shot`` x the pixel value), drawn from ``rng``."""
    x = img.astype(np.float32)
    sigma = np.sqrt(read_sigma ** 2 + shot * x)
    return np.clip(x + sigma * rng.standard_normal(x.shape, dtype=np.float32), 0, 255).round().astype(np.uint8)


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """uint8 ``img`` (HxWx3) encoded and decoded by OpenCV's JPEG codec at ``quality``."""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).reshape(img.shape)


def letterbox(x: torch.Tensor) -> torch.Tensor:
    """Pad NCHW images to a square with gray, content centred (export-friendly: symbolic sizes)."""
    h, w = x.shape[-2], x.shape[-1]
    side = torch.sym_max(h, w)
    ph, pw = side - h, side - w
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=LETTERBOX_FILL / 255.0)


class Normalize(nn.Module):
    """(x - mean) / std per channel, NCHW."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ModelInput(nn.Module):
    """What a model with ``spec`` does to a [0, 1] RGB crop of any size: resize to its resolution,
    up to its input size, normalise.

    This is the pre-processing the export fuses into the graph; training and evaluation call the
    same module, so parity holds by construction. The first resize must be one graph op for any
    crop size, so with ``down="bilinear"`` it is antialiased bilinear in either direction (the
    antialias only acts when shrinking, which is the op training used on its HR images).
    """

    def __init__(self, spec: InputSpec):
        super().__init__()
        self.spec = spec
        self.normalize = Normalize(spec.mean, spec.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, size = self.spec.resolution, self.spec.size
        if self.spec.fit == "letterbox":
            x = letterbox(x)
        if self.spec.down == "bilinear":
            x = F.interpolate(x, size=(r, r), mode="bilinear", antialias=True, align_corners=False)
        else:
            x = resize(x, r, self.spec.down, self.spec.up)
        if size != r:
            x = resize(x, size, self.spec.down, self.spec.up)
        return self.normalize(x)


# ---------------------------------------------------------------------------------------------
# Camera degradations: what a real pipeline does to an object before our graph sees the crop.
# The kernels are the real OpenCV / Pillow functions called per sample on uint8 images (exact by
# construction, no torch re-implementation to drift), so a model cannot learn one kernel.

def _pil_resize(img: np.ndarray, size: tuple[int, int], method: int) -> np.ndarray:
    from PIL import Image

    return np.array(Image.fromarray(img).resize(size, method))


def _aa_bilinear(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    # Our own training kernel (antialiased bilinear, = PIL's BILINEAR), through torch.
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()
    y = F.interpolate(x, size=(size[1], size[0]), mode="bilinear", antialias=True, align_corners=False)
    return y[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def camera_resize(img: np.ndarray, size: tuple[int, int], kernel: str) -> np.ndarray:
    """Resize uint8 HxWx3 ``img`` to ``size`` = (width, height) with a named real-world kernel."""
    from PIL import Image

    if kernel in CV2_KERNELS:
        return cv2.resize(img, size, interpolation=CV2_KERNELS[kernel])
    if kernel == "pil-bicubic":
        return _pil_resize(img, size, Image.BICUBIC)
    if kernel == "pil-bilinear":
        return _pil_resize(img, size, Image.BILINEAR)
    if kernel == "aa-bilinear":
        return _aa_bilinear(img, size)
    raise InputError(f"unknown resize kernel {kernel!r}; expected one of {', '.join(KERNELS)}")


CV2_KERNELS = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC,
               "nearest": cv2.INTER_NEAREST, "lanczos": cv2.INTER_LANCZOS4}
KERNELS = (*CV2_KERNELS, "pil-bicubic", "pil-bilinear", "aa-bilinear")


@dataclass(frozen=True)
class Camera:
    """A random camera, drawn per sample: box jitter and aspect, optics (defocus or motion blur),
    a downscale kernel among ``kernels`` to a random size, sensor noise (Gaussian + Poisson) and
    JPEG. ``min_size``/``max_size`` bound the crop's long side in pixels (log-uniform)."""

    min_size: int = 6
    max_size: int = 32
    kernels: tuple[str, ...] = KERNELS
    box_jitter: float = 0.2        # box sides scaled by 1 +- this, shifted by half of it
    aspect_range: float = 2.5      # square objects (CIFAR) are cut/stretched to aspects in [1/r, r]
    aspect_jitter: float = 1.25    # non-square objects (people) keep their aspect within x/÷ this
    blur_p: float = 0.25
    motion_p: float = 0.1
    noise_p: float = 0.5
    jpeg_p: float = 0.4

    def __post_init__(self):
        if not 1 <= self.min_size <= self.max_size:
            raise InputError(f"camera sizes must satisfy 1 <= min_size <= max_size, got {self.min_size}, "
                             f"{self.max_size}")
        bad = [k for k in self.kernels if k not in KERNELS]
        if bad or not self.kernels:
            raise InputError(f"unknown camera kernels {bad}; expected some of {', '.join(KERNELS)}")

    @classmethod
    def scaled(cls, realism: float, **fields) -> "Camera":
        """A camera whose blur / motion / noise / JPEG probabilities are the defaults times ``realism``
        (0: only the kernel, size, aspect and box are random); the blur and motion probabilities
        together stay <= 1."""
        if not 0.0 <= realism <= 2.0:
            raise InputError(f"camera realism must be in [0, 2], got {realism}")
        d = cls()
        blur, motion = d.blur_p * realism, d.motion_p * realism
        return cls(blur_p=blur, motion_p=motion, noise_p=min(1.0, d.noise_p * realism),
                   jpeg_p=min(1.0, d.jpeg_p * realism), **fields)

    def __call__(self, img: np.ndarray, aspect: float, rng: np.random.Generator) -> np.ndarray:
        """One uint8 HxWx3 object image (stored square; ``aspect`` = its true width / height) ->
        the small uint8 crop a camera delivers (any shape)."""
        h, w = img.shape[:2]
        if abs(aspect - 1.0) < 0.05:  # square source: every aspect, half cut and half stretched
            target = float(np.exp(rng.uniform(-np.log(self.aspect_range), np.log(self.aspect_range))))
            cut = np.sqrt(target)
        else:
            target = aspect * float(np.exp(rng.uniform(-np.log(self.aspect_jitter), np.log(self.aspect_jitter))))
            cut = target / aspect
        fw, fh = (cut, 1.0) if cut < 1 else (1.0, 1.0 / cut)
        fw *= 1 + rng.uniform(-self.box_jitter, self.box_jitter)
        fh *= 1 + rng.uniform(-self.box_jitter, self.box_jitter)
        cw, ch = min(max(2, round(fw * w)), 2 * w), min(max(2, round(fh * h)), 2 * h)
        cx = w / 2 + rng.uniform(-0.5, 0.5) * self.box_jitter * w
        cy = h / 2 + rng.uniform(-0.5, 0.5) * self.box_jitter * h
        pad = max(w, h) // 2
        src = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
        x0 = min(max(round(cx - cw / 2) + pad, 0), src.shape[1] - cw)
        y0 = min(max(round(cy - ch / 2) + pad, 0), src.shape[0] - ch)
        crop = src[y0:y0 + ch, x0:x0 + cw]
        u = rng.random()
        if u < self.blur_p:
            crop = cv2.GaussianBlur(crop, (0, 0), rng.uniform(0.3, 1.5))
        elif u < self.blur_p + self.motion_p:
            crop = _motion_blur(crop, rng)
        long_side = int(round(np.exp(rng.uniform(np.log(self.min_size), np.log(self.max_size + 1) - 1e-6))))
        long_side = min(max(long_side, self.min_size), self.max_size)
        if target >= 1:
            size = (long_side, max(1, round(long_side / target)))
        else:
            size = (max(1, round(long_side * target)), long_side)
        kernel = self.kernels[rng.integers(len(self.kernels))]
        out = camera_resize(np.ascontiguousarray(crop), size, kernel)
        if rng.random() < self.noise_p:
            # Read-noise sigma, then shot-noise gain, then the generator.
            out = sensor_noise(out, rng.uniform(0, 6), rng.uniform(0, 0.6), rng)
        if rng.random() < self.jpeg_p:
            out = jpeg_roundtrip(out, int(rng.integers(30, 96)))
        return out


def _motion_blur(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(3, 8))
    k = np.zeros((n, n), np.float32)
    k[n // 2, :] = 1.0 / n
    rot = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), rng.uniform(0, 180), 1.0)
    k = cv2.warpAffine(k, rot, (n, n))
    return cv2.filter2D(img, -1, k / max(k.sum(), 1e-6), borderType=cv2.BORDER_REFLECT_101)


class CameraInput(nn.Module):
    """Training input of a ``camera`` recipe: each HR sample through a random `Camera`, then the
    model's own `ModelInput` (letterbox, resize, normalise) exactly as the exported graph runs it.

    Camera crops all differ in size, so the graph's first steps (letterbox + antialiased bilinear
    resize to the resolution) run per sample in numpy with the filter's weight matrices
    (`host_preprocess`, equal to torch's / the graph's resize to float rounding; tested) and the rest
    once on the batch: 128 per-sample torch calls cost ~17 ms a batch, the matrices ~3 ms."""

    def __init__(self, camera: Camera, spec: InputSpec):
        super().__init__()
        self.camera, self.model_input = camera, ModelInput(spec)

    def forward(self, hr: torch.Tensor, aspects: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
        images = (hr.permute(0, 2, 3, 1) * 255.0).round().to(torch.uint8).numpy()
        smalls = [self.camera(img, float(a), rng) for img, a in zip(images, aspects)]
        spec = self.model_input.spec
        if spec.down != "bilinear":  # the graph's first resize is another kernel: torch, per sample
            return torch.cat([self.model_input(torch.from_numpy(s).permute(2, 0, 1)[None].float().div_(255.0))
                              for s in smalls])
        x = torch.from_numpy(np.stack([to_resolution(s, spec) for s in smalls])).permute(0, 3, 1, 2).div_(255.0)
        if spec.size != spec.resolution:
            x = resize(x, spec.size, spec.down, spec.up)
        return self.model_input.normalize(x)
