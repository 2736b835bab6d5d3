"""Shared fixtures: tiny synthetic ImageFolder datasets and the real data in ../shared when present."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CIFAR_ARCHIVE = SHARED_DATA / "cifar10-jpg.tar.gz"


def write_flat_clip(path: Path, frames: int, size: tuple[int, int], fps: float = 5) -> Path:
    """An MJPG clip of ``frames`` flat grey frames (``size``: width, height): nothing moves in it."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for _ in range(frames):
        writer.write(np.full((size[1], size[0], 3), 90, np.uint8))
    writer.release()
    return path


def make_image_folder(root: Path, per_class: int, size: int = 16, seed: int = 0) -> Path:
    """Three learnable classes: red blobs, horizontal stripes, vertical stripes, on noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for label, name in enumerate(["blob", "hstripes", "vstripes"]):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 90, (size, size, 3)).astype(np.float32)
            phase = rng.integers(0, 4)
            if label == 0:
                cy, cx = rng.integers(4, size - 4, 2)
                img[(yy - cy) ** 2 + (xx - cx) ** 2 < 12, 2] += 160  # BGR: red
            elif label == 1:
                img[((yy + phase) // 2) % 2 == 0] += 150  # 2-D mask: all channels
            else:
                img[((xx + phase) // 2) % 2 == 0] += 150
            cv2.imwrite(str(root / name / f"{i:03d}.png"), img.clip(0, 255).astype(np.uint8))
    return root


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    make_image_folder(root / "train", 32, seed=0)
    make_image_folder(root / "test", 12, seed=1)
    return root


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def tiny_recipe(data: Path, **kw):
    from lowres_sdk.training.recipe import Recipe

    base = dict(data=str(data), arch="resnet20", width=0.5, image_size=16, resolution=8, epochs=2,
                batch_size=16, lr=0.05, seed=3)
    base.update(kw)
    return Recipe(**base)


@pytest.fixture(autouse=True)
def _two_threads():
    # Not importorskip: the torch-free runtime tests must run (not skip) where torch is absent.
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory) -> Path:
    """A 3-class model trained for 3 epochs on the tiny data (8 px, upsampled to 16)."""
    from lowres_sdk.training.loop import train

    path = tmp_path_factory.mktemp("tiny_run") / "run"
    train(tiny_recipe(tiny_data, epochs=3, resolution=8), path, progress=False)
    return path


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run, tmp_path_factory):
    from lowres_sdk.export.exporter import export_run

    return export_run(tiny_run, tmp_path_factory.mktemp("tiny_bundle") / "bundle", eval_per_class=12,
                      log=lambda *a: None)


@pytest.fixture(scope="session")
def tiny_teacher(tiny_data, tmp_path_factory) -> Path:
    """The one shared HR teacher (16 px, 3 classes) the methods that need a --teacher build on."""
    from lowres_sdk.training.loop import train

    path = tmp_path_factory.mktemp("tiny_teacher") / "hr"
    train(tiny_recipe(tiny_data, method="hr", epochs=3), path, progress=False)
    return path


@pytest.fixture(scope="session")
def shipped_one_model(tmp_path_factory):
    """The shipped default bundle, or, when it is routed, its first route split out as a bundle of one
    model (the form TensorRT and DeepStream take)."""
    from lowres_sdk.bundle import load_bundle

    bundle = load_bundle(None)
    if not bundle.routes:
        return bundle
    from lowres_sdk.export.routed import split_route

    return split_route(bundle, 0, tmp_path_factory.mktemp("shipped_route0") / "bundle", log=lambda *a: None)
