"""What the HTTP server accepts as images, and the limits it enforces before decoding anything.

Encoded images: JPEG or PNG only (magic bytes decide, not the declared content type). Their size
is read from the header *before* decoding, so a 200-byte PNG that declares 100k x 100k pixels is
refused without allocating it; a JPEG without its end marker or a PNG without IEND is refused as
truncated (OpenCV would otherwise decode the missing part as gray and say nothing).
Raw crops: ``{"shape": [H, W] or [H, W, C], "data": base64 of the H*W*C uint8 bytes, row-major}``,
C in 1, 3, 4 (gray, BGR, BGRA), as ``numpy.ndarray.tobytes()`` gives them.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import numpy as np

from ..crops import as_crops
from ..errors import InputError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IEND = b"IEND\xaeB`\x82"
JPEG_SOI, JPEG_EOI = b"\xff\xd8", b"\xff\xd9"
# Start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclass(frozen=True)
class Limits:
    """Per-request limits; each refusal names the field it broke."""

    max_body_bytes: int = 8 << 20
    max_images: int = 256
    max_pixels: int = 1 << 20      # per image, H * W
    # per image; the graph's resize costs memory growing with the side squared: one 1x4096 crop took
    # +170 MB (1x16384: 3.3 GB, FACTS.md), and a batch holds up to max_batch of them; 1024: ~11 MB
    max_side: int = 1024


class LimitError(InputError):
    """A request exceeds one of the server's `Limits` (HTTP 413). Kept here rather than in errors.py:
    only the server raises it."""

    def __init__(self, limit: str, value: int, message: str):
        super().__init__(message)
        self.limit, self.value = limit, value


def check_count(n: int, limits: Limits) -> None:
    if n == 0:
        raise InputError("the request holds no images")
    if n > limits.max_images:
        raise LimitError("max_images", limits.max_images,
                         f"{n} images in one request; the limit (max_images) is {limits.max_images}")


def check_size(h: int, w: int, limits: Limits, where: str) -> None:
    if max(h, w) > limits.max_side:
        raise LimitError("max_side", limits.max_side,
                         f"{where} is {w}x{h} px; the limit (max_side) is {limits.max_side} px a side")
    if h * w > limits.max_pixels:
        raise LimitError("max_pixels", limits.max_pixels,
                         f"{where} has {h * w} pixels; the limit (max_pixels) is {limits.max_pixels}")


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from the first start-of-frame segment, or None if there is none."""
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in _JPEG_SOF:
            return int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big")
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def decode_image(data: bytes, limits: Limits, where: str = "image") -> np.ndarray:
    """Encoded JPEG/PNG bytes -> uint8 HxWx3 BGR, or InputError / LimitError saying why not."""
    import cv2

    if data.startswith(PNG_SIGNATURE):
        if len(data) < 33 or data[12:16] != b"IHDR":
            raise InputError(f"{where} is not a valid PNG (no IHDR header)")
        w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        if not data.rstrip(b"\x00").endswith(PNG_IEND):
            raise InputError(f"{where} is a truncated PNG (no IEND chunk at the end)")
    elif data.startswith(JPEG_SOI):
        size = _jpeg_size(data)
        if size is None:
            raise InputError(f"{where} is not a valid JPEG (no frame header)")
        h, w = size
        # Entropy-coded data stuffs every 0xFF with 0x00, so FF D9 at the end can only be the end marker.
        if not data.rstrip(b"\x00\r\n ").endswith(JPEG_EOI):
            raise InputError(f"{where} is a truncated JPEG (no end-of-image marker)")
    else:
        raise InputError(f"{where} is neither JPEG nor PNG (first bytes {data[:8].hex() or 'none: empty'})")
    if h == 0 or w == 0:
        raise InputError(f"{where} declares an empty size {w}x{h}")
    check_size(h, w, limits, where)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{where} is corrupt: OpenCV cannot decode it")
    if img.shape[:2] != (h, w):  # the header lied about the size the limits were checked on
        raise InputError(f"{where} decodes to {img.shape[1]}x{img.shape[0]}, but its header says {w}x{h}")
    return img


def base64_bytes(value, name: str) -> bytes:
    """The bytes a base64 string of a request holds; InputError naming it (``name``) otherwise."""
    if not isinstance(value, str):
        raise InputError(f"{name} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InputError(f"{name} is not valid base64 ({e})") from None


def decode_raw(item, limits: Limits, where: str = "crop") -> np.ndarray:
    """``{"shape": [H, W(, C)], "data": base64}`` -> the crop as `as_crops` converts it."""
    if not isinstance(item, dict) or set(item) != {"shape", "data"}:
        raise InputError(f"{where}: expected an object with exactly the keys 'shape' and 'data'")
    shape, data = item["shape"], item["data"]
    if (not isinstance(shape, list) or len(shape) not in (2, 3)
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
        raise InputError(f"{where}: 'shape' must be [H, W] or [H, W, C] of positive integers, got {shape!r}"[:300])
    if len(shape) == 3 and shape[2] not in (1, 3, 4):
        raise InputError(f"{where}: expected 1, 3 or 4 channels (gray, BGR, BGRA), got {shape[2]}")
    check_size(shape[0], shape[1], limits, where)
    raw = base64_bytes(data, f"{where}: 'data'")
    expected = int(np.prod(shape))
    if len(raw) != expected:
        raise InputError(f"{where}: shape {shape} needs {expected} bytes, 'data' holds {len(raw)}")
    return as_crops(np.frombuffer(raw, np.uint8).reshape(shape))[0]
