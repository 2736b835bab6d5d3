"""Real data: a short training on a CIFAR-10 subset from ../shared/data learns well above chance."""
import pytest

from lowres_sdk.training.data import load_splits
from lowres_sdk.training.recipe import Recipe
from lowres_sdk.training.loop import train

from conftest import CIFAR_ARCHIVE

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CIFAR_ARCHIVE.is_file(), reason=f"CIFAR-10 archive not found at {CIFAR_ARCHIVE}")]


def test_short_lowres_training_on_cifar10_subset_beats_chance(cache_dir, tmp_path):
    data = load_splits(CIFAR_ARCHIVE, 32, limit_per_class=300, cache_dir=cache_dir)
    recipe = Recipe(method="lr", data=str(CIFAR_ARCHIVE), arch="resnet20", resolution=16, input_mode="native",
                    epochs=4, batch_size=64, lr=0.05, limit_per_class=300)
    meta = train(recipe, tmp_path / "run", data=data, progress=False)
    top1 = meta["history"][-1]["test_top1"]
    # 3,000 training images, 4 epochs, 16x16 input: chance is 10 %; measured ~40 % here.
    assert top1 > 0.28, top1


@pytest.fixture(scope="module")
def cifar_subset(cache_dir):
    return load_splits(CIFAR_ARCHIVE, 32, limit_per_class=200, cache_dir=cache_dir)


@pytest.fixture(scope="module")
def cifar_hr(cifar_subset, tmp_path_factory):
    run = tmp_path_factory.mktemp("cifar_hr") / "hr"
    train(Recipe(method="hr", data=str(CIFAR_ARCHIVE), width=0.5, epochs=4, batch_size=64, lr=0.05, limit_per_class=200),
          run, data=cifar_subset, progress=False)
    return run


# 2,000 training images, a few epochs, 16 px input, chance 10 %. Measured (seed 0, 2,000 test
# images): staged 37.3 %, mixed 28.5 %, transfer (SVM) 30.8 %, sr 27.7 % (the 4-epoch HR teacher
# itself: 31.9 % at 32 px).
@pytest.mark.parametrize("method,kw,floor", [
    ("staged", dict(epochs=3), 0.28),
    ("mixed", dict(epochs=3), 0.21),
    ("transfer", dict(epochs=30, batch_size=256, lr=0.01, clusters=20, transfer_hidden=64), 0.22),
    ("sr", dict(epochs=2, input_mode="native"), 0.20),
])
def test_each_method_learns_on_a_cifar10_subset(cifar_subset, cifar_hr, tmp_path, method, kw, floor):
    base = dict(data=str(CIFAR_ARCHIVE), width=0.5, resolution=16, batch_size=64, lr=0.05, limit_per_class=200)
    recipe = Recipe(method=method, teacher=str(cifar_hr), **{**base, **kw})
    meta = train(recipe, tmp_path / method, data=cifar_subset, progress=False)
    top1 = meta["history"][-1]["test_top1"]
    assert top1 > floor, (method, top1)
