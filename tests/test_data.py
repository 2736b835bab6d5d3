import json
import tarfile

import numpy as np
import pytest

from lowres_sdk import DataError
from lowres_sdk.training.data import extract_archive, load_splits, read_image_folder

from conftest import CIFAR_ARCHIVE, make_image_folder


@pytest.fixture
def archive(tmp_path):
    src = tmp_path / "src"
    make_image_folder(src / "train", 4)
    make_image_folder(src / "test", 2)
    path = tmp_path / "toy.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(src / split, arcname=split)
    return path


def test_archive_is_extracted_once_into_the_cache(archive, tmp_path):
    cache = tmp_path / "cache"
    root = extract_archive(archive, cache)
    assert root.parent == cache / "datasets" and (root / "train" / "blob").is_dir()
    manifest = json.loads((root / ".lowres_manifest.json").read_text())
    assert manifest["files"] == 18
    stamp = (root / ".lowres_manifest.json").stat().st_mtime_ns
    assert extract_archive(archive, cache) == root
    assert (root / ".lowres_manifest.json").stat().st_mtime_ns == stamp  # not extracted again
    train, test = load_splits(archive, 16, cache_dir=cache)
    assert train.images.shape == (12, 16, 16, 3) and test.images.shape == (6, 16, 16, 3)
    assert train.images.dtype == np.uint8 and list(np.bincount(train.labels)) == [4, 4, 4]


def test_incomplete_extraction_is_redone(archive, tmp_path):
    cache = tmp_path / "cache"
    root = extract_archive(archive, cache)
    (root / "train" / "blob" / "000.png").unlink()  # a damaged cache no longer matches its manifest
    assert extract_archive(archive, cache) == root
    assert (root / "train" / "blob" / "000.png").is_file()


def test_known_archive_with_wrong_checksum_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "cifar10-jpg.tar.gz"
    fake.write_bytes(b"definitely not cifar")
    with pytest.raises(DataError, match="sha256"):
        extract_archive(fake, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_split_classes_must_agree(tmp_path):
    make_image_folder(tmp_path / "train", 2)
    make_image_folder(tmp_path / "test", 2)
    (tmp_path / "test" / "extra").mkdir()
    with pytest.raises(DataError, match="expected"):
        load_splits(tmp_path, 16)
    with pytest.raises(DataError, match="no 'train/' folder"):
        load_splits(tmp_path / "test", 16)


def test_images_are_resized_to_the_requested_size(tmp_path):
    make_image_folder(tmp_path, 2, size=40)
    s = read_image_folder(tmp_path, 16)
    assert s.images.shape == (6, 16, 16, 3)
    assert read_image_folder(tmp_path, None).images.shape == (6, 40, 40, 3)


@pytest.mark.skipif(not CIFAR_ARCHIVE.is_file(), reason=f"CIFAR-10 archive not found at {CIFAR_ARCHIVE}")
def test_cifar10_archive_layout(cache_dir):
    train, test = load_splits(CIFAR_ARCHIVE, 32, limit_per_class=5, cache_dir=cache_dir)
    assert train.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert train.images.shape == (50, 32, 32, 3) and test.images.shape == (50, 32, 32, 3)


def test_truncated_archive_is_a_data_error_and_leaves_no_temp_folder(tmp_path):
    import io
    import tarfile

    from lowres_sdk.errors import DataError
    from lowres_sdk.training.data import extract_archive

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = bytes(range(256)) * 4000
        info = tarfile.TarInfo("train/a/x.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="could not extract"):
        extract_archive(archive, cache)
    assert not list((cache / "datasets").glob(".extract-*"))
