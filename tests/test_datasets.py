import gzip
import os

import numpy as np
import pytest
import tensorflow as tf

from helpers import require_data
from tfdisc import datasets, evaluation


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_real_mnist_from_npz_matches_its_readme():
    x, y = datasets.load_arrays("mnist", "test", data_dir=str(require_data().parent), download=False)
    assert x.shape == (10000, 28, 28, 1) and x.dtype == np.uint8 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_idx_folder_is_read_exactly(tmp_path):
    x, y = datasets.load_arrays("mnist", "train", data_dir=str(require_data().parent), examples=50, download=False)
    folder = tmp_path / "mnist"
    folder.mkdir()
    for split, (images, labels) in {"train": (x, y), "test": (x[:10], y[:10])}.items():
        image_file, label_file = datasets.IDX_FILES[split]
        _write_idx(folder / image_file, images[..., 0])
        _write_idx(folder / label_file, labels)
    x_idx, y_idx = datasets.load_arrays("mnist", "train", data_dir=str(tmp_path), download=False)
    np.testing.assert_array_equal(x_idx, x)
    np.testing.assert_array_equal(y_idx, y)


@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist"),
                    reason="Debian's dataset-fashion-mnist is not installed (.ci/run installs it)")
def test_fashion_mnist_from_debians_package():
    x, y = datasets.load_arrays("fashion_mnist", "test", data_dir=None, download=False)
    assert x.shape == (10000, 28, 28, 1) and np.bincount(y).tolist() == [1000] * 10


def test_load_gives_float_batches_in_unit_range():
    dataset = datasets.load("mnist", "test", data_dir=str(require_data().parent), examples=300, batch_size=128,
                            download=False)
    batches = list(dataset)
    assert [len(b[0]) for b in batches] == [128, 128, 44]
    x, y = batches[0]
    assert x.dtype == tf.float32 and y.dtype == tf.int64 and x.shape[1:] == (28, 28, 1)
    assert 0.0 == float(tf.reduce_min(x)) and float(tf.reduce_max(x)) == 1.0


def test_subsets_are_fixed_and_unbiased_for_class_sorted_files():
    folder = str(require_data("cifar10").parent)
    _, y = datasets.load_arrays("cifar10", "test", data_dir=folder, examples=2000, download=False)
    _, again = datasets.load_arrays("cifar10", "test", data_dir=folder, examples=2000, download=False)
    np.testing.assert_array_equal(y, again)
    assert np.bincount(y, minlength=10).min() > 150  # the file's test indices 1000.. are sorted by class


def test_shuffled_pipeline_is_seeded_per_epoch():
    x = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    y = np.arange(10, dtype=np.int64)

    def labels(first_epoch, seed=3, epochs=2):
        it = iter(datasets.pipeline(x, y, batch_size=5, shuffle_seed=seed, first_epoch=first_epoch))
        return [next(it)[1].numpy().tolist() for _ in range(2 * epochs)]

    run = labels(0)
    assert sorted(sum(run[:2], [])) == list(range(10)) and run[:2] != run[2:]
    assert labels(1, epochs=1) == run[2:]
    assert labels(0, seed=4) != run


def test_in_memory_pipelines_run_without_autotuning():
    # Autotuning stalls every iterator's teardown until its thread wakes (see without_autotune).
    x, y = np.zeros((4, 2, 2, 1), np.uint8), np.zeros(4, np.int64)
    for dataset in (datasets.pipeline(x, y, 2), datasets.pipeline(x, y, 2, shuffle_seed=0)):
        assert dataset.options().autotune.enabled is False
    assert evaluation.as_dataset((x, y)).options().autotune.enabled is False


def _bad_npz(tmp_path, **arrays):
    base = {"x_train": np.zeros((4, 28, 28), np.uint8), "y_train": np.zeros(4, np.uint8),
            "x_test": np.zeros((2, 28, 28), np.uint8), "y_test": np.zeros(2, np.uint8)}
    np.savez(tmp_path / "mnist.npz", **{**base, **arrays})
    return str(tmp_path)


@pytest.mark.parametrize("arrays, message", [
    ({"x_train": np.zeros((4, 28, 28), np.float32)}, "images must be uint8"),
    ({"x_train": np.zeros((4, 32, 32), np.uint8)}, r"must be \(28, 28, 1\); got \(32, 32, 1\)"),
    ({"y_train": np.full(4, 10, np.uint8)}, r"labels must lie in 0..9"),
    ({"y_train": np.zeros(3, np.uint8)}, "need one int label per image"),
])
def test_bad_files_are_named(tmp_path, arrays, message):
    with pytest.raises(ValueError, match=message):
        datasets.load_arrays("mnist", "train", data_dir=_bad_npz(tmp_path, **arrays), download=False)


def test_missing_data_says_where_it_looked_and_how_to_fix(tmp_path):
    with pytest.raises(datasets.DataNotFoundError) as error:
        datasets.load("cifar100", "train", data_dir=str(tmp_path), download=False)
    message = str(error.value)
    assert f"{tmp_path}/cifar100.npz" in message and "TFDS cifar100" in message and "To fix:" in message


@pytest.mark.parametrize("name, split, message", [
    ("svhn", "train", "Unknown dataset 'svhn'; valid values are 'mnist'"),
    ("mnist", "validation", "Unknown split 'validation'; valid values are 'train', 'test'"),
])
def test_unknown_names_raise(name, split, message):
    with pytest.raises(ValueError, match=message):
        datasets.load(name, split)


def test_first_n_keeps_the_first_images_in_order():
    folder = str(require_data().parent)
    first, labels = datasets.load_arrays("mnist", "test", data_dir=folder, examples=100, subset_order="first")
    everything, all_labels = datasets.load_arrays("mnist", "test", data_dir=folder)
    np.testing.assert_array_equal(first, everything[:100])
    np.testing.assert_array_equal(labels, all_labels[:100])
    with pytest.raises(ValueError, match="Unknown subset order 'last'"):
        datasets.load_arrays("mnist", "test", data_dir=folder, examples=100, subset_order="last")


def test_offline_tfds_fails_at_once_and_leaves_no_downloads(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "network_reachable", lambda: False)
    with pytest.raises(datasets.DataNotFoundError, match="Could not find cifar100"):
        datasets.load("cifar100", "train", data_dir=str(tmp_path), download=True)
    assert not (tmp_path / "downloads").exists()


def test_augmentation_crops_and_flips_reproducibly():
    x = np.arange(2 * 8 * 8 * 3, dtype=np.uint8).reshape(2, 8, 8, 3) % 200 + 50  # no zeros: padding shows
    y = np.arange(2, dtype=np.int64)

    def first_epochs(first_epoch=0, epochs=3):
        it = iter(datasets.pipeline(x, y, batch_size=2, shuffle_seed=1, first_epoch=first_epoch, augmented=True))
        return [next(it) for _ in range(epochs)]

    run = first_epochs()
    for images, labels in run:
        images = np.round(images.numpy() * 255).astype(np.uint8)
        assert images.shape == x.shape
        for image, label in zip(images, labels.numpy()):
            inside = image[image > 0]  # a shifted and maybe mirrored copy of the original, zeros where padded
            original = x[label]
            assert set(inside.tolist()) <= set(original.ravel().tolist())
            assert any(np.array_equal(image[r0:r1, c0:c1], view[r0 + dr:r1 + dr, c0 + dc:c1 + dc])
                       for view in (original, original[:, ::-1]) for dr in range(-4, 5) for dc in range(-4, 5)
                       for r0, r1, c0, c1 in [(max(0, -dr), min(8, 8 - dr), max(0, -dc), min(8, 8 - dc))])
    augmented = [np.round(images.numpy() * 255).astype(np.uint8) for images, _ in run]
    assert any(not np.array_equal(a[np.argsort(labels)], x) for a, (_, labels) in zip(augmented, run))
    again = first_epochs(first_epoch=1, epochs=2)  # a resumed run sees the same augmented epochs
    for (a_images, a_labels), (b_images, b_labels) in zip(run[1:], again):
        np.testing.assert_array_equal(a_images.numpy(), b_images.numpy())
        np.testing.assert_array_equal(a_labels.numpy(), b_labels.numpy())
    with pytest.raises(ValueError, match="augmented=True needs a shuffle_seed"):
        datasets.pipeline(x, y, 2, augmented=True)
