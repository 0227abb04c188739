"""Data stage: digits, shapes and ImageFolder snapshots, splits, hashing, storage, batch reads."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training_service.data import (
    DatasetError,
    DatasetLimits,
    DatasetNotFoundError,
    DatasetStore,
    DatasetTooLargeError,
    build_dataset,
)
from training_service.data import snapshot as snapshot_module


def make_image_folder(
    root: Path, classes: dict[str, int], size: int = 16, mode: str = "L"
) -> dict[bytes, str]:
    """class_name/*.png, every image different; returns {pixels (C, H, W) bytes: class}."""
    rng = np.random.default_rng(len(classes) * 7 + size)
    made = {}
    for name, count in classes.items():
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(count):
            shape = (size, size) if mode == "L" else (size, size, 3)
            pixels = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(pixels, mode).save(folder / f"{i}.png")
            chw = pixels[None] if mode == "L" else pixels.transpose(2, 0, 1)
            made[np.ascontiguousarray(chw).tobytes()] = name
    return made


def test_digits_snapshot_has_the_contract_format(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    dataset = build_dataset("digits", data_dir=tmp_path, test_fraction=0.2, seed=1)
    info = dataset.info
    assert (info.n_train + info.n_test, info.n_test) == (1797, 360)
    assert (info.image_size, info.channels, info.image_shape) == (8, 1, [8, 8])
    assert dataset.classes == [str(i) for i in range(10)]
    assert sum(info.class_counts.values()) == 1797 and len(info.mean) == len(info.std) == 1
    test = dataset.split("test")
    assert set(np.unique(test.labels)) == set(range(10))  # stratified
    stored = np.load(dataset.directory / "train_images.npy", mmap_mode="r")
    assert stored.dtype == np.uint8 and stored.shape == (info.n_train, 1, 8, 8)
    # Every stored image is a digit, stored as round(v / 16 * 255).
    expected = {
        np.rint(image / 16 * 255).astype(np.uint8).tobytes() for image in load_digits().images
    }
    batch = dataset.split("train").read(np.arange(50))
    assert batch.dtype == np.float32 and batch.shape == (50, 1, 8, 8)
    assert all(np.rint(image[0] * 255).astype(np.uint8).tobytes() in expected for image in batch)


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
    n = plain.info.n_train
    assert noisy.info.n_train == 2 * n and noisy.info.n_test == plain.info.n_test
    assert noisy.info.class_counts == plain.info.class_counts
    everything = np.arange(plain.info.n_test)
    np.testing.assert_array_equal(
        noisy.split("test").read(everything), plain.split("test").read(everything)
    )
    train = noisy.split("train")
    clean, copy = train.read(np.arange(n)), train.read(np.arange(n, 2 * n))
    np.testing.assert_array_equal(clean, plain.split("train").read(np.arange(n)))
    np.testing.assert_array_equal(train.labels[n:], train.labels[:n])
    assert not np.array_equal(copy, clean) and np.abs(copy - clean).mean() < 0.15


def test_shapes_are_deterministic_balanced_rgb_images(tmp_path: Path) -> None:
    first = build_dataset("shapes", data_dir=tmp_path, seed=7, count=250, image_size=24)
    again = build_dataset("shapes", data_dir=tmp_path, seed=7, count=250, image_size=24)
    other = build_dataset("shapes", data_dir=tmp_path, seed=8, count=250, image_size=24)
    assert first.info.sha256 == again.info.sha256 != other.info.sha256
    info = first.info
    assert info.classes == ["circle", "cross", "square", "star", "triangle"]
    assert info.class_counts == dict.fromkeys(info.classes, 50)
    assert (info.image_size, info.channels, info.n_train + info.n_test) == (24, 3, 250)
    test_counts = np.bincount(first.split("test").labels, minlength=5)
    assert test_counts.tolist() == [10] * 5  # stratified held-out split
    pixels = first.split("train").read(np.arange(info.n_train))
    np.testing.assert_allclose(info.mean, pixels.mean(axis=(0, 2, 3)), atol=1e-5)
    np.testing.assert_allclose(info.std, pixels.std(axis=(0, 2, 3)), atol=1e-5)


def test_shapes_colour_does_not_tell_the_class(tmp_path: Path) -> None:
    dataset = build_dataset("shapes", data_dir=tmp_path, seed=1, count=1500, image_size=16)
    train = dataset.split("train")
    pixels = train.read(np.arange(len(train)))
    means = np.stack([pixels[train.labels == k].mean(axis=(0, 2, 3)) for k in range(5)])
    assert np.ptp(means, axis=0).max() < 0.08  # every class has about the same mean colour


def test_split_read_returns_the_source_pixels(tmp_path: Path) -> None:
    made = make_image_folder(tmp_path / "rgb", {"a": 9, "b": 7}, size=12, mode="RGB")
    dataset = build_dataset("folder", data_dir=tmp_path, path="rgb", test_fraction=0.25)
    assert (dataset.info.image_size, dataset.info.channels) == (12, 3)  # defaults from data
    seen = []
    for name in ("train", "test"):
        split = dataset.split(name)
        order = np.arange(len(split))[::-1].copy()  # any order, not only ascending
        for image, label in zip(split.read_uint8(order), split.labels[order], strict=True):
            assert made[image.tobytes()] == dataset.classes[label]
            seen.append(image.tobytes())
    assert sorted(seen) == sorted(made)


def test_input_stats_describe_the_train_split(tmp_path: Path) -> None:
    dataset = build_dataset("shapes", data_dir=tmp_path, seed=2, count=100, image_size=8)
    train = dataset.split("train")
    pixels = train.read(np.arange(len(train))).reshape(len(train), -1).astype(np.float64)
    stats = dataset.input_stats()
    assert stats["count"] == len(train) and len(stats["mean"]) == 3 * 8 * 8
    np.testing.assert_allclose(stats["mean"], pixels.mean(axis=0), atol=1e-9)
    np.testing.assert_allclose(stats["std"], pixels.std(axis=0), atol=1e-6)


def test_read_fetches_only_the_rows_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = build_dataset("shapes", data_dir=tmp_path, count=1500, image_size=64)
    train = dataset.split("train")
    file_bytes = (dataset.directory / "train_images.npy").stat().st_size
    row = 3 * 64 * 64
    assert file_bytes > 3_000_000
    read = []
    real_pread = os.pread

    def counting_pread(fd: int, size: int, offset: int) -> bytes:
        read.append(size)
        return real_pread(fd, size, offset)

    monkeypatch.setattr(snapshot_module.os, "pread", counting_pread)
    indices = np.array([900, 3, 4, 5, 77, 1100])
    tracemalloc.start()
    batch = train.read(indices)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert batch.shape == (6, 3, 64, 64)
    assert sum(read) == 6 * row and len(read) == 4  # 3, 4, 5 in one read
    assert peak < 8 * 6 * row  # the uint8 rows and their float32 copy, not the file


def test_folder_symlinks_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    make_image_folder(outside, {"secret": 3})
    data_dir = tmp_path / "data"
    make_image_folder(data_dir / "tree", {"a": 4, "b": 4})
    (data_dir / "tree" / "escape").symlink_to(outside / "secret", target_is_directory=True)
    (data_dir / "tree" / "a" / "linked.png").symlink_to(outside / "secret" / "0.png")
    dataset = build_dataset("folder", data_dir=data_dir, path="tree", test_fraction=0.25)
    assert dataset.classes == ["a", "b"]
    assert dataset.info.class_counts == {"a": 4, "b": 4}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (None, "needs 'path'"),
        ("../outside", "leaves DATA_DIR"),
        ("/etc", "leaves DATA_DIR"),
        ("missing", "not a folder"),
        ("one-class", "at least 2 class"),
        ("empty-class", "'hollow' holds no images"),
    ],
)
def test_folder_source_rejects_bad_paths_with_a_fix(
    tmp_path: Path, path: str | None, message: str
) -> None:
    make_image_folder(tmp_path / "one-class", {"only": 4})
    make_image_folder(tmp_path / "empty-class", {"full": 4})
    (tmp_path / "empty-class" / "hollow").mkdir()
    (tmp_path.parent / "outside").mkdir(exist_ok=True)
    with pytest.raises(DatasetError, match=message):
        build_dataset("folder", data_dir=tmp_path, path=path)


def test_folder_with_too_few_images_to_split_is_an_input_error(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "tiny", {"a": 1, "b": 1})
    with pytest.raises(DatasetError, match="cannot split"):
        build_dataset("folder", data_dir=tmp_path, path="tiny")


def test_unreadable_image_is_named_and_nothing_is_stored(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "bad", {"a": 3, "b": 3})
    (tmp_path / "bad" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DatasetError, match="'a/broken.png' is not a readable image"):
        build_dataset("folder", data_dir=tmp_path, path="bad")
    assert list((tmp_path / "datasets").iterdir()) == []


def test_folder_limits_name_the_setting(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "many", {"a": 6, "b": 6}, size=40)
    with pytest.raises(DatasetTooLargeError, match="12 images is over MAX_DATASET_IMAGES=11"):
        build_dataset(
            "folder", data_dir=tmp_path, path="many", limits=DatasetLimits(max_dataset_images=11)
        )
    with pytest.raises(DatasetTooLargeError, match="'a/0.png' has 1,600 pixels.*MAX_IMAGE_PIXELS"):
        build_dataset(
            "folder", data_dir=tmp_path, path="many", limits=DatasetLimits(max_image_pixels=1000)
        )


def test_store_round_trips_info_and_samples(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "datasets")
    dataset = build_dataset("digits", data_dir=tmp_path, seed=9, store=store)
    assert store.save(dataset) == dataset.info  # already stored: nothing to do
    loaded = store.load(dataset.info.dataset_id)
    assert loaded.info == dataset.info
    images, labels = store.samples(dataset.info.dataset_id, "test", 5)
    assert images.shape == (5, 1, 8, 8)
    np.testing.assert_array_equal(images, dataset.split("test").read(np.arange(5)))
    assert labels == [str(int(y)) for y in dataset.split("test").labels[:5]]
    other = DatasetStore(tmp_path / "elsewhere")
    other.save(dataset)
    assert other.info(dataset.info.dataset_id) == dataset.info


@pytest.mark.parametrize("dataset_id", ["ds-000000000000", "../jobs", "ds-xyz", ""])
def test_store_unknown_or_malformed_ids_are_not_found(tmp_path: Path, dataset_id: str) -> None:
    store = DatasetStore(tmp_path / "datasets")
    with pytest.raises(DatasetNotFoundError):
        store.info(dataset_id)
