"""Camera degradations: the kernels are the real OpenCV / Pillow functions, seeded draws replay,
and the KD loss is its formula."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from lowres_sdk.errors import InputError
from lowres_sdk.spec import InputSpec
from lowres_sdk.host_preprocess import to_resolution
from lowres_sdk.training.degrade import KERNELS, Camera, CameraInput, ModelInput, camera_resize
from lowres_sdk.training.kd import kd_loss

from conftest import CIFAR_ARCHIVE


@pytest.fixture(scope="module")
def real_images():
    if not CIFAR_ARCHIVE.exists():
        pytest.skip(f"real images need {CIFAR_ARCHIVE} (shared data absent)")
    from lowres_sdk.training.data import load_splits

    return load_splits(CIFAR_ARCHIVE, 32, limit_per_class=3)[1].images


@pytest.mark.parametrize("kernel, reference", [
    ("area", lambda im, s: cv2.resize(im, s, interpolation=cv2.INTER_AREA)),
    ("linear", lambda im, s: cv2.resize(im, s, interpolation=cv2.INTER_LINEAR)),
    ("cubic", lambda im, s: cv2.resize(im, s, interpolation=cv2.INTER_CUBIC)),
    ("nearest", lambda im, s: cv2.resize(im, s, interpolation=cv2.INTER_NEAREST)),
    ("lanczos", lambda im, s: cv2.resize(im, s, interpolation=cv2.INTER_LANCZOS4)),
    ("pil-bicubic", lambda im, s: np.asarray(Image.fromarray(im).resize(s, Image.BICUBIC))),
    ("pil-bilinear", lambda im, s: np.asarray(Image.fromarray(im).resize(s, Image.BILINEAR))),
])
def test_library_kernels_are_the_library_functions(real_images, kernel, reference):
    for img in real_images:
        for size in ((7, 7), (12, 5), (16, 16), (40, 40)):
            assert np.array_equal(camera_resize(img, size, kernel), reference(img, size)), (kernel, size)


def test_our_antialiased_bilinear_matches_pillow_within_one_level(real_images):
    # Stated tolerance: torch's antialiased bilinear is Pillow's triangle filter in float; after
    # rounding to uint8 they differ by at most 1 level (measured: max 1 on these images).
    worst = max(int(np.abs(camera_resize(img, s, "aa-bilinear").astype(int)
                           - camera_resize(img, s, "pil-bilinear").astype(int)).max())
                for img in real_images for s in ((8, 8), (12, 7), (16, 16)))
    assert worst <= 1


def test_camera_draws_are_seeded_and_vary():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    a = [Camera()(im, 1.0, np.random.default_rng(7)) for im in images]
    b = [Camera()(im, 1.0, np.random.default_rng(7)) for im in images]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    cam, rng = Camera(), np.random.default_rng(1)
    shapes = {cam(images[0], 1.0, rng).shape for _ in range(60)}
    assert len(shapes) > 10  # sizes and aspects vary
    assert all(6 <= max(h, w) <= 32 for h, w, _ in shapes)
    tall = [cam(images[0], 0.4, rng).shape for _ in range(60)]
    assert all(h > w for h, w, _ in tall)  # a person stays taller than wide (aspect x/÷ 1.25)


def test_camera_input_is_seeded_by_the_generator_and_shaped_like_the_model_input():
    ci = CameraInput(Camera(), InputSpec(size=16, resolution=16, fit="letterbox"))
    hr = torch.rand(8, 3, 32, 32)
    x1 = ci(hr, np.ones(8), torch.Generator().manual_seed(3))
    x2 = ci(hr, np.ones(8), torch.Generator().manual_seed(3))
    x3 = ci(hr, np.ones(8), torch.Generator().manual_seed(4))
    assert x1.shape == (8, 3, 16, 16) and torch.equal(x1, x2) and not torch.equal(x1, x3)


@pytest.mark.parametrize("spec", [InputSpec(size=16, resolution=16, fit="letterbox"),
                                  InputSpec(size=32, resolution=8, fit="stretch")])
def test_camera_input_batches_what_the_model_input_does_per_sample(spec):
    # the numpy weight matrices of the fast path = the graph's torch ops, crop by crop
    ci, rng = CameraInput(Camera(), spec), np.random.default_rng(0)
    smalls = [rng.integers(0, 256, (int(rng.integers(3, 40)), int(rng.integers(3, 40)), 3), dtype=np.uint8) for _ in range(40)]
    ref = torch.cat([ModelInput(spec)(torch.from_numpy(s).permute(2, 0, 1)[None].float() / 255.0) for s in smalls])
    got = torch.from_numpy(np.stack([to_resolution(s, spec) for s in smalls])).permute(0, 3, 1, 2) / 255.0
    if spec.size != spec.resolution:
        from lowres_sdk.training.degrade import resize

        got = resize(got, spec.size, spec.down, spec.up)
    got = ci.model_input.normalize(got)
    assert got.shape == ref.shape and (got - ref).abs().max() < 1e-4


def test_recipe_shape_fields_reach_the_camera():
    # camera_aspect 1 / no box jitter: a square source stays square (only rounding of the long side);
    # the default cuts and stretches it to aspects in [1/2.5, 2.5]
    from lowres_sdk.training.recipe import Recipe
    from lowres_sdk.training.task import Task

    def shapes(**kw):
        task = Task(Recipe(resolution=16, input_mode="native", degradation="camera", **kw), student=None)
        rng, img = np.random.default_rng(0), np.full((32, 32, 3), 128, np.uint8)
        return [task.camera.camera(img, 1.0, rng).shape[:2] for _ in range(50)]

    assert all(h == w for h, w in shapes(camera_aspect=1.0, camera_box_jitter=0.0))
    assert max(max(h, w) / min(h, w) for h, w in shapes()) > 1.8
    with pytest.raises(InputError, match="camera_aspect"):
        Recipe(camera_aspect=0.5)
    with pytest.raises(InputError, match="camera_box_jitter"):
        Recipe(camera_box_jitter=1.0)


def test_camera_realism_scales_blur_noise_and_jpeg():
    # a flat gray object stays flat through kernels, sizes and boxes alone (realism 0); noise on every
    # sample (realism 2: noise_p 1) leaves it flat almost never
    from lowres_sdk.training.recipe import Recipe
    from lowres_sdk.training.task import Task

    def flat_share(realism):
        task = Task(Recipe(resolution=16, input_mode="native", degradation="camera", camera_realism=realism), student=None)
        rng, img = np.random.default_rng(0), np.full((32, 32, 3), 128, np.uint8)
        return np.mean([np.ptp(task.camera.camera(img, 1.0, rng)) == 0 for _ in range(60)])

    assert flat_share(0.0) == 1.0
    assert flat_share(2.0) < 0.1
    cam = Camera.scaled(0.5)
    assert (cam.blur_p, cam.noise_p, cam.jpeg_p) == (Camera().blur_p / 2, Camera().noise_p / 2, Camera().jpeg_p / 2)
    with pytest.raises(InputError, match="camera_realism"):
        Recipe(camera_realism=-0.1)


def test_camera_kernels_recipe_field_sets_the_draw():
    # only nearest neighbour (no blur / noise / JPEG): every output pixel is one of the object's pixels;
    # the default draw (all kernels) averages pixels most of the time
    from lowres_sdk.training.recipe import Recipe
    from lowres_sdk.training.task import Task

    def copied_share(kernels):
        task = Task(Recipe(resolution=16, input_mode="native", degradation="camera", camera_realism=0.0,
                           camera_kernels=kernels), student=None)
        rng = np.random.default_rng(0)
        img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        palette = set(map(tuple, img.reshape(-1, 3)))
        return np.mean([all(tuple(px) in palette for px in task.camera.camera(img, 1.0, rng).reshape(-1, 3)) for _ in range(30)])

    assert copied_share("nearest") == 1.0
    assert copied_share("") < 0.5
    assert Recipe(camera_kernels="area, nearest,nearest").camera.kernel_list == ("area", "nearest", "nearest")
    with pytest.raises(InputError, match="camera_kernels: unknown kernel"):
        Recipe(camera_kernels="area,bogus")


def test_bad_camera_settings_are_input_errors():
    with pytest.raises(InputError, match="camera sizes"):
        Camera(min_size=9, max_size=8)
    with pytest.raises(InputError, match="unknown camera kernels"):
        Camera(kernels=("bogus",))
    with pytest.raises(InputError, match="unknown resize kernel"):
        camera_resize(np.zeros((4, 4, 3), np.uint8), (2, 2), "bogus")
    assert set(KERNELS) >= {"area", "linear", "cubic", "nearest", "lanczos", "pil-bicubic"}


def test_kd_loss_is_its_formula():
    s = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    t = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    tau = 2.0
    expected = 0.0
    for i in range(2):
        pt = torch.softmax(t[i] / tau, 0)
        ps = torch.softmax(s[i] / tau, 0)
        expected += float((pt * (pt.log() - ps.log())).sum()) * tau * tau
    assert kd_loss(s, t, tau).item() == pytest.approx(expected / 2, rel=1e-6)
    assert kd_loss(t, t, tau).item() == pytest.approx(0.0, abs=1e-7)


def test_kd_loss_of_an_ensemble_distils_the_mean_of_its_softened_outputs():
    s = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    t1 = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    t2 = torch.tensor([[-1.0, 3.0, 0.5], [2.0, 0.0, 0.0]])
    tau = 2.0
    expected = 0.0
    for i in range(2):
        pt = (torch.softmax(t1[i] / tau, 0) + torch.softmax(t2[i] / tau, 0)) / 2
        ps = torch.softmax(s[i] / tau, 0)
        expected += float((pt * (pt.log() - ps.log())).sum()) * tau * tau
    assert kd_loss(s, [t1, t2], tau).item() == pytest.approx(expected / 2, rel=1e-6)
    assert kd_loss(s, [t1], tau).item() == pytest.approx(kd_loss(s, t1, tau).item(), rel=1e-7)
    assert min(abs(kd_loss(s, [t1, t2], tau).item() - kd_loss(s, t, tau).item()) for t in (t1, t2)) > 1e-3
