import numpy as np
import pytest
import torch

from lowres_sdk import InputError, InputSpec
from lowres_sdk.training.degrade import Degrade, ModelInput, resize


def hr(n=4, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("res", [8, 12, 16, 24])
def test_native_and_upsampled_shapes(res):
    x = hr()
    assert Degrade(res)(x).shape == (4, 3, res, res)
    up = Degrade(res, out_size=32)(x)
    assert up.shape == (4, 3, 32, 32)
    assert float(up.min()) >= 0.0 and float(up.max()) <= 1.0  # bicubic overshoot clamped


def test_downsampling_is_antialiased():
    # A 1-px checkerboard has mean 0.5; antialiased shrinking averages it, naive sampling would not.
    yy, xx = np.mgrid[:32, :32]
    board = torch.from_numpy(((yy + xx) % 2).astype(np.float32)).expand(1, 3, 32, 32)
    for down in ("area", "bilinear"):
        lr = Degrade(8, down=down)(board)
        assert torch.allclose(lr, torch.full_like(lr, 0.5), atol=0.02), down


def test_upsampled_lr_loses_detail_but_keeps_mean():
    x = hr()
    y = Degrade(8, out_size=32)(x)
    assert (y - x).abs().mean() > 0.1
    assert torch.allclose(y.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=0.02)


def test_realism_is_seeded_and_reproducible():
    d = Degrade(8, out_size=32, blur_sigma=1.0, noise_std=0.05, jpeg_quality=50)
    a = d(hr(), torch.Generator().manual_seed(7))
    b = d(hr(), torch.Generator().manual_seed(7))
    c = d(hr(), torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not d.is_deterministic and Degrade(8).is_deterministic


def test_identity_when_already_at_size():
    x = hr(size=16)
    assert torch.equal(resize(x, 16), x)
    assert torch.equal(Degrade(16)(x), x)


def test_model_input_follows_spec():
    spec = InputSpec(size=32, resolution=8)
    x = hr(size=48)  # any crop size goes through the same pipeline
    y = ModelInput(spec)(x)
    assert y.shape == (4, 3, 32, 32)
    expected = (Degrade(8, 32)(x) - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)
    assert torch.allclose(y, expected, atol=1e-6)


def test_bad_arguments_raise_input_error():
    with pytest.raises(InputError, match="smaller than resolution"):
        Degrade(16, out_size=8)
    with pytest.raises(InputError, match="interpolation"):
        Degrade(8, down="nearest")
    with pytest.raises(InputError, match="larger than the model input"):
        InputSpec(size=16, resolution=32)
    with pytest.raises(InputError, match="jpeg_quality"):
        Degrade(8, jpeg_quality=0)


def test_letterbox_keeps_aspect_with_gray_borders():
    from lowres_sdk.training.degrade import letterbox

    tall = torch.ones(1, 3, 40, 10)
    sq = letterbox(tall)
    assert sq.shape == (1, 3, 40, 40)
    assert torch.all(sq[..., 15:25] == 1) and torch.allclose(sq[..., :15], torch.tensor(128 / 255))
    y = ModelInput(InputSpec(size=16, resolution=16, fit="letterbox"))(tall)
    assert y.shape == (1, 3, 16, 16)
    with pytest.raises(InputError, match="fit"):
        InputSpec(fit="crop")


def test_data_reader_letterbox_matches_graph_fill(tmp_path):
    import cv2
    from lowres_sdk.training.data import read_image_folder

    (tmp_path / "a").mkdir()
    cv2.imwrite(str(tmp_path / "a" / "p.png"), np.full((64, 16, 3), 255, np.uint8))
    img = read_image_folder(tmp_path, 32, fit="letterbox").images[0]
    assert img.shape == (32, 32, 3)
    assert (img[:, 0] == 128).all() and (img[:, 16] == 255).all()  # gray borders, content centred
