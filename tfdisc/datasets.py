"""One `load(...)` for every data set: tf.data of (float32 images in [0, 1], int64 labels).

Sources, in order: `<data_dir>/<name>.npz` in Keras layout (x_train, y_train, x_test, y_test,
uint8); a folder of MNIST-style idx `.gz` files (`data_dir`, `data_dir/<name>`, and Debian's
`/usr/share/datasets/fashion-mnist` for fashion_mnist); otherwise TensorFlow Datasets with
`data_dir` (ImageNet from its manual download folder `<data_dir>/downloads/manual`).
`data_dir` defaults to the environment variable TFDISC_DATA_DIR.
"""

import gzip
import logging
import math
import os
import socket
import zipfile
import zlib

import numpy as np
import tensorflow as tf

from tfdisc import presets

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")
SUBSETS = ("random", "first")

IDX_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
              "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


class DataNotFoundError(FileNotFoundError):
    """The data set is in none of the places `load` looks; the message says how to provide it."""


def _check_request(name, split):
    presets.get(name)
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; valid values are 'train', 'test'.")


def _data_dir(data_dir):
    """`data_dir` or $TFDISC_DATA_DIR; a folder that does not exist fails at once (a typo, not a download target)."""
    data_dir = data_dir if data_dir is not None else os.environ.get("TFDISC_DATA_DIR")
    if data_dir and os.path.isfile(data_dir):
        raise DataNotFoundError(f"The data folder {data_dir!r} is a file, not a folder. Point --data_dir (or "
                                "TFDISC_DATA_DIR) at the folder that holds it.")
    if data_dir and not os.path.isdir(data_dir):
        raise DataNotFoundError(
            f"The data folder {data_dir!r} does not exist. Point --data_dir (or TFDISC_DATA_DIR) at the folder that "
            "holds <dataset>.npz, or create the folder to let TFDS download into it.")
    return data_dir


def _read_idx(path):
    """An MNIST-style idx file (gzipped) as a uint8 array; ValueError naming the file if it is corrupt or truncated."""
    fix = "replace it with a complete copy (MNIST's idx distribution format)"
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"{path} is not a readable gzip file ({type(error).__name__}: {error}); {fix}.") from None
    if len(data) < 4 or data[2] != 0x08 or len(data) < 4 + 4 * data[3]:
        raise ValueError(f"{path} is not an idx file of unsigned bytes; {fix}.")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(data) - 4 - 4 * ndim != int(np.prod(shape)):
        raise ValueError(f"{path} holds {len(data) - 4 - 4 * ndim} bytes of data where its header announces "
                         f"{int(np.prod(shape))} ({shape}): it is truncated; {fix}.")
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _from_npz(path, split):
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = {f"x_{split}", f"y_{split}"}
            if not keys <= set(archive.files):
                raise ValueError(f"{path} lacks {sorted(keys - set(archive.files))}; "
                                 "expected Keras layout with x_train, y_train, x_test, y_test.")
            return archive[f"x_{split}"], archive[f"y_{split}"]
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        if isinstance(error, ValueError) and str(error).startswith(path):
            raise
        raise ValueError(f"{path} is not a readable .npz archive ({type(error).__name__}: {error}); it may be truncated "
                         "or corrupt. Replace it with a complete copy (Keras layout: x_train, y_train, x_test, y_test)."
                         ) from None


def _candidates(name, data_dir):
    """(kind, path) pairs in the order they are tried."""
    places = []
    if data_dir:
        places.append(("npz", os.path.join(data_dir, f"{name}.npz")))
        places += [("idx", data_dir), ("idx", os.path.join(data_dir, name))]
    places += [("idx", d) for d in presets.get(name).idx_dirs]
    return places


def network_reachable(host: str = "storage.googleapis.com", port: int = 443, timeout: float = 3.0) -> bool:
    """Whether TFDS's download host answers (a quick probe, so an offline run fails at once)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _from_tfds(name, split, data_dir, download):
    import tensorflow_datasets as tfds

    if download and not network_reachable():
        logger.info("No network: TFDS may only use data already prepared in %s", data_dir or "~/tensorflow_datasets")
        download = False
    tfds_split = presets.get(name).tfds_splits[SPLITS.index(split)]
    kwargs = {}
    if name == "imagenet2012" and data_dir:
        kwargs["download_and_prepare_kwargs"] = {
            "download_config": tfds.download.DownloadConfig(manual_dir=os.path.join(data_dir, "downloads", "manual"))}
    try:
        return tfds.load(name, split=tfds_split, data_dir=data_dir, as_supervised=True, download=download, **kwargs)
    except Exception as error:  # TFDS raises many kinds: missing files, no network, manual download needed
        return error


def _validate(name, split, x, y, source):
    info = presets.get(name)
    if x.ndim == 3 and info.image_shape[-1] == 1:
        x = x[..., None]
    if x.dtype != np.uint8:
        raise ValueError(f"{source}: {name} {split} images must be uint8 0..255; got {x.dtype}.")
    if x.shape[1:] != info.image_shape:
        raise ValueError(f"{source}: {name} images must be {info.image_shape}; got {x.shape[1:]}.")
    y = np.asarray(y).reshape(-1)
    if len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{source}: need one int label per image; got {len(y)} {y.dtype} labels for {len(x)} images.")
    if len(y) and (y.min() < 0 or y.max() >= info.num_classes):
        raise ValueError(f"{source}: labels must lie in 0..{info.num_classes - 1}; got {y.min()}..{y.max()}.")
    return x, y.astype(np.int64)


def load_arrays(name: str, split: str, *, data_dir: str | None = None, examples: int | None = None,
                subset_order: str = "random", download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One split as (uint8 images NHWC, int64 labels) numpy arrays, from the first source that has it.

    `examples` keeps that many: by default a fixed random subset (seed 0) in original order, unbiased
    even for files sorted by class; `subset_order="first"` keeps the first ones (to compare with other
    tools on "the first N test images").
    """
    _check_request(name, split)
    if not presets.get(name).in_memory:
        raise ValueError(f"{name} is too large to hold in memory; use tfdisc.datasets.load.")
    subset(0, examples, subset_order)  # bad arguments fail before any file is read
    x, y = _read_split(name, split, _data_dir(data_dir), download)
    keep = subset(len(x), examples, subset_order)
    return x[keep], y[keep]


def _read_split(name, split, data_dir, download):
    for kind, path in _candidates(name, data_dir):
        if kind == "npz" and os.path.isfile(path):
            return _validate(name, split, *_from_npz(path, split), source=path)
        files = [os.path.join(path, f) for f in IDX_FILES[split]]
        if kind == "idx" and all(os.path.isfile(f) for f in files):
            return _validate(name, split, _read_idx(files[0]), _read_idx(files[1]), source=path)
    dataset = _from_tfds(name, split, data_dir, download)
    if isinstance(dataset, Exception):
        raise _not_found(name, data_dir, dataset)
    images, labels = zip(*dataset.as_numpy_iterator())
    return _validate(name, split, np.stack(images), np.array(labels), source=f"TFDS {name}")


def _not_found(name, data_dir, error):
    looked = [path for _, path in _candidates(name, data_dir)] + [f"TFDS {name} in {data_dir or '~/tensorflow_datasets'}"]
    hint = (f"put {name}.npz (Keras layout, uint8) in a folder and pass --data_dir=FOLDER or set TFDISC_DATA_DIR, "
            "or let TFDS download it (needs internet)")
    if name == "imagenet2012":
        hint = "place ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in <data_dir>/downloads/manual (TFDS manual download)"
    first_line = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
    return DataNotFoundError(f"Could not find {name}. Looked in: {'; '.join(looked)}. To fix: {hint}. "
                             f"(TFDS said: {first_line})")


def subset(n: int, examples: int | None, order: str = "random") -> np.ndarray:
    """Indices of `examples` of n items, ascending: all, the first ones, or a fixed random subset (seed 0)."""
    if order not in SUBSETS:
        raise ValueError(f"Unknown subset order {order!r}; valid values are {', '.join(map(repr, SUBSETS))}.")
    if examples is not None and (isinstance(examples, bool) or not isinstance(examples, (int, np.integer))
                                 or examples < 1):
        raise ValueError(f"examples must be a positive int; got {examples!r}.")
    if examples is None or examples >= n:
        return np.arange(n)
    if order == "first":
        return np.arange(examples)
    return np.sort(np.random.default_rng(0).permutation(n)[:examples])


def steps_per_epoch(examples: int, batch_size: int) -> int:
    return math.ceil(examples / batch_size)


def _to_float(images, labels):
    return tf.cast(images, tf.float32) / 255.0, labels


def without_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data autotuning off: for data already in memory, where it has nothing to tune.

    Autotuning's background thread often makes an iterator's teardown wait for its next wake-up,
    10·(2^k − 1) ms after the iterator started: a 100-batch `fit` epoch of FCN2-BNN took 2.55 s
    instead of 1.34 s (`scripts/benchmark.py --parts=pipeline`).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def augment(images: tf.Tensor, seeds: tf.Tensor, padding: int = 4) -> tf.Tensor:
    """Standard CIFAR augmentation, one stateless seed per image: pad by `padding` (zeros), crop back to the
    original size at a random offset, and flip left-right with probability 1/2 (as torchvision's RandomCrop and
    RandomHorizontalFlip in the study's reference code). `images` NHWC, `seeds` [N, 2] int."""
    height, width = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]])

    def one(args):
        image, seed = args
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        image = tf.image.stateless_random_crop(image, [height, width, image.shape[-1]], crop_seed)
        return tf.image.stateless_random_flip_left_right(image, flip_seed)

    return tf.map_fn(one, (padded, seeds), fn_output_signature=images.dtype)


def pipeline(x: np.ndarray, y: np.ndarray, batch_size: int = 128, shuffle_seed: int | None = None,
             first_epoch: int = 0, augmented: bool = False) -> tf.data.Dataset:
    """tf.data of (float32 in [0, 1], int64) batches over uint8 arrays, prefetched, autotuning off.

    Without `shuffle_seed`: one pass in order, cached. With it: endless epochs from
    `first_epoch`, epoch e a permutation seeded by (shuffle_seed, e), so a resumed run sees the
    very batches an uninterrupted one would; give `fit` `steps_per_epoch(len(x), batch_size)`.
    `augmented` (with `shuffle_seed`) applies `augment`, seeded by (shuffle_seed, epoch, image).
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != np.uint8:
        raise ValueError(f"pipeline takes uint8 images 0..255; got {x.dtype}. Use tfdisc.evaluation.as_dataset "
                         "for float images in [0, 1].")
    if len(x) != len(y) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"pipeline needs one int label per image; got {len(y)} {y.dtype} labels for {len(x)} images.")
    if shuffle_seed is None:
        if augmented:
            raise ValueError("augmented=True needs a shuffle_seed: augmentation belongs to training pipelines.")
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
        return without_autotune(dataset.map(_to_float, tf.data.AUTOTUNE).cache().prefetch(tf.data.AUTOTUNE))
    images, labels = tf.constant(x), tf.constant(y)
    seed = tf.constant(shuffle_seed, tf.int64)

    def batch_of(e, indices):
        batch = tf.gather(images, indices)
        if augmented:
            position = e * len(x) + tf.cast(indices, tf.int64)  # one seed per image and epoch
            batch = augment(batch, tf.stack([tf.fill(tf.shape(position), seed), position], axis=1))
        return _to_float(batch, tf.gather(labels, indices))

    def epoch(e):
        order = tf.random.experimental.stateless_shuffle(tf.range(len(x)), seed=tf.stack([seed, e]))
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
        return batches.map(lambda indices: batch_of(e, indices), tf.data.AUTOTUNE)

    epochs = tf.data.Dataset.counter(first_epoch, dtype=tf.int64).flat_map(epoch)
    return without_autotune(epochs.prefetch(tf.data.AUTOTUNE))


def load(name: str, split: str, *, data_dir: str | None = None, batch_size: int = 128, examples: int | None = None,
         subset_order: str = "random", shuffle_seed: int | None = None, first_epoch: int = 0,
         download: bool = True) -> tf.data.Dataset:
    """Batched, cached, prefetched tf.data of (float32 images in [0, 1], int64 labels).

    Names: mnist, fashion_mnist, cifar10, cifar100, imagenet2012; splits: train, test (ImageNet's
    validation set). See `pipeline` for `shuffle_seed` (endless, epoch-seeded shuffling).
    ImageNet streams from TFDS, resized to 227×227 and shuffled through a buffer.

    # Arguments
        name, split: the data set and its split.
        data_dir: where the data is (the module docstring lists the sources tried in order); None for
            $TFDISC_DATA_DIR.
        batch_size: images per batch.
        examples: use only this many (None: all), chosen by `subset_order` ("random": a fixed seed-0 subset,
            or "first").
        shuffle_seed, first_epoch: see `pipeline`.
        download: whether TFDS may download a data set that is not on the machine.
    """
    _check_request(name, split)
    if not presets.get(name).in_memory:
        return _load_streaming(name, split, _data_dir(data_dir), batch_size, examples, shuffle_seed, download)
    x, y = load_arrays(name, split, data_dir=data_dir, examples=examples, subset_order=subset_order, download=download)
    return pipeline(x, y, batch_size, shuffle_seed, first_epoch)


def _load_streaming(name, split, data_dir, batch_size, examples, shuffle_seed, download):
    """ImageNet-sized data from TFDS, resized to the model's input; buffer-shuffled, so not batch-exact on resume."""
    dataset = _from_tfds(name, split, data_dir, download)
    if isinstance(dataset, Exception):
        raise _not_found(name, data_dir, dataset)
    size = presets.get(name).image_shape[:2]
    if examples is not None:
        dataset = dataset.take(examples)
    if shuffle_seed is not None:
        dataset = dataset.shuffle(10_000, seed=shuffle_seed)
    dataset = dataset.map(lambda image, label: (tf.image.resize(tf.cast(image, tf.float32), size) / 255.0, label),
                          tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
