"""Data stage: digits and ImageFolder snapshots, splits, hashing, storage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training_service.data import (
    DatasetError,
    DatasetNotFoundError,
    DatasetStore,
    build_dataset,
)


def make_image_folder(root: Path, classes: dict[str, int], size: int = 16) -> None:
    """class_name/*.png: class k is a bright square at a class-specific place."""
    for index, (name, count) in enumerate(classes.items()):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(count):
            pixels = np.zeros((size, size), dtype=np.uint8)
            offset = (index * 5) % (size - 4)
            pixels[offset : offset + 4, offset : offset + 4] = 200 + i % 50
            Image.fromarray(pixels).save(folder / f"{i}.png")


def test_digits_snapshot_has_model_input_format(tmp_path: Path) -> None:
    dataset = build_dataset("digits", data_dir=tmp_path, test_fraction=0.2, seed=1)
    assert dataset.x_train.dtype == np.float32 and dataset.x_train.shape[1:] == (1, 8, 8)
    assert dataset.x_train.min() >= 0.0 and dataset.x_train.max() <= 1.0
    assert dataset.info.n_train + dataset.info.n_test == 1797
    assert dataset.info.n_test == 360
    assert dataset.classes == [str(i) for i in range(10)]
    # Stratified: every class is in the test split in about the same share.
    assert set(np.unique(dataset.y_test)) == set(range(10))


def test_same_request_gives_same_content_hash_and_seed_changes_it(tmp_path: Path) -> None:
    first = build_dataset("digits", data_dir=tmp_path, seed=3)
    again = build_dataset("digits", data_dir=tmp_path, seed=3)
    other = build_dataset("digits", data_dir=tmp_path, seed=4)
    assert first.info.sha256 == again.info.sha256
    assert first.info.dataset_id != again.info.dataset_id  # every snapshot is a new version
    assert first.info.sha256 != other.info.sha256


def test_noise_adds_a_noisy_copy_of_the_train_split_only(tmp_path: Path) -> None:
    plain = build_dataset("digits", data_dir=tmp_path, seed=5)
    noisy = build_dataset("digits", data_dir=tmp_path, seed=5, noise=0.1)
    assert noisy.info.n_train == 2 * plain.info.n_train
    assert noisy.info.n_test == plain.info.n_test
    np.testing.assert_array_equal(noisy.x_test, plain.x_test)
    copy = noisy.x_train[plain.info.n_train :]
    assert not np.array_equal(copy, plain.x_train)
    assert copy.min() >= 0.0 and copy.max() <= 1.0


def test_folder_source_reads_classes_and_resizes_to_8x8(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "shapes", {"cat": 10, "dog": 10, "eel": 10})
    dataset = build_dataset("folder", data_dir=tmp_path, path="shapes", test_fraction=0.3)
    assert dataset.classes == ["cat", "dog", "eel"]
    assert dataset.x_train.shape[1:] == (1, 8, 8)
    assert dataset.info.n_train + dataset.info.n_test == 30
    assert dataset.x_train.max() <= 1.0 and dataset.x_train.max() > 0.5


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (None, "needs 'path'"),
        ("../outside", "leaves DATA_DIR"),
        ("/etc", "leaves DATA_DIR"),
        ("missing", "not a folder"),
        ("one-class", "at least 2 class"),
    ],
)
def test_folder_source_rejects_bad_paths_with_a_fix(
    tmp_path: Path, path: str | None, message: str
) -> None:
    make_image_folder(tmp_path / "one-class", {"only": 4})
    (tmp_path.parent / "outside").mkdir(exist_ok=True)
    with pytest.raises(DatasetError, match=message):
        build_dataset("folder", data_dir=tmp_path, path=path)


def test_folder_with_too_few_images_to_split_is_an_input_error(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "tiny", {"a": 1, "b": 1})
    with pytest.raises(DatasetError, match="cannot split"):
        build_dataset("folder", data_dir=tmp_path, path="tiny")


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "bad", {"a": 3, "b": 3})
    (tmp_path / "bad" / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="broken.png"):
        build_dataset("folder", data_dir=tmp_path, path="bad")


def test_store_round_trips_arrays_and_info(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "datasets")
    dataset = build_dataset("digits", data_dir=tmp_path, seed=9)
    store.save(dataset)
    loaded = store.load(dataset.info.dataset_id)
    assert loaded.info == dataset.info
    np.testing.assert_array_equal(loaded.x_test, dataset.x_test)
    np.testing.assert_array_equal(loaded.y_train, dataset.y_train)
    images, labels = store.samples(dataset.info.dataset_id, "test", 5)
    assert images.shape == (5, 8, 8)
    assert labels == [str(int(y)) for y in dataset.y_test[:5]]


@pytest.mark.parametrize("dataset_id", ["ds-000000000000", "../jobs", "ds-xyz", ""])
def test_store_unknown_or_malformed_ids_are_not_found(tmp_path: Path, dataset_id: str) -> None:
    store = DatasetStore(tmp_path / "datasets")
    with pytest.raises(DatasetNotFoundError):
        store.info(dataset_id)
