"""Real data: a short training on a CIFAR-10 subset from ../shared/data learns well above chance."""
import pytest

from lowres_sdk.training.data import load_splits
from lowres_sdk.training.loop import Recipe, train

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
