"""Image folders as training data: every image decodes or is refused (or skipped by name),
the channels come from the whole folder, classes are the visible subfolders (two at
least); IDX class ids are dense; a damaged TFDS description names its file."""

import json

import numpy as np
import pytest
import tensorflow as tf
from train_data import REAL_MNIST, mnist_folder, needs_mnist, needs_tfds, tfds_digits

from horq_keras.datasets.pipelines import DataError, inspect_data, make_datasets
from horq_keras.datasets.sources import parse_source

pytestmark = needs_mnist


def _inspect(root, **kwargs):
    return inspect_data(parse_source(f"folder:{root}"), image_size=32, **kwargs)


@pytest.fixture
def digits(tmp_path):
    return mnist_folder(tmp_path / "digits", n_train=40, n_val=20)


def _png(root, split, label, name, image):
    path = root / split / str(label) / name
    path.write_bytes(tf.io.encode_png(image).numpy())
    return path


@pytest.mark.parametrize("damage", ["random bytes after a PNG signature", "truncated PNG",
                                    "not an image at all"])
def test_an_image_that_does_not_decode_is_refused_by_name(digits, damage):
    good = next((digits / "train" / "3").iterdir()).read_bytes()
    data = {"random bytes after a PNG signature": good[:8] + bytes(range(256)) * 4,
            "truncated PNG": good[: len(good) // 2],
            "not an image at all": b"not a png at all"}[damage]
    bad = digits / "train" / "3" / "zz_bad.png"
    bad.write_bytes(data)
    with pytest.raises(DataError, match=rf"1 image file\(s\) do not decode as JPEG or PNG: "
                                        rf"{bad}; .*--skip-bad-images"):
        _inspect(digits)


def test_skip_bad_images_names_each_file_and_counts_true(digits):
    bad = [digits / "train" / "3" / "zz_bad.png", digits / "val" / "7" / "zz_bad.png"]
    for path in bad:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.warns(UserWarning) as caught:
        info = _inspect(digits, skip_bad_images=True)
    assert sorted(str(w.message) for w in caught) == sorted(
        f"--data folder:{digits}: skipping {p}: it does not decode as a JPEG or PNG image "
        f"(--skip-bad-images)." for p in bad)
    assert sorted(info.skipped) == sorted(map(str, bad))
    assert (info.train_count, info.val_count) == (40, 20)
    assert "skipped 2 image file(s)" in info.describe()
    train, val = make_datasets(info, batch_size=64)
    assert sum(len(y) for _, y in train) == 40 and sum(len(y) for _, y in val) == 20


def test_a_class_whose_images_all_fail_is_refused_even_when_skipping(digits):
    (digits / "train" / "dragon").mkdir()
    (digits / "train" / "dragon" / "a.png").write_bytes(b"junk")
    with pytest.warns(UserWarning), pytest.raises(DataError, match="dragon has no decodable"):
        _inspect(digits, skip_bad_images=True)


def test_a_validation_split_that_does_not_decode_is_refused(digits):
    for path in (digits / "val").rglob("*.png"):
        path.write_bytes(b"junk")
    with pytest.warns(UserWarning), pytest.raises(DataError, match="val has no decodable"):
        _inspect(digits, skip_bad_images=True)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_channels_come_from_the_whole_folder_not_the_first_file(digits, seed):
    rgb = np.zeros((28, 28, 3), np.uint8)
    rgb[..., 0] = 255
    _png(digits, "train", 5, "color.png", rgb)
    info = _inspect(digits, seed=seed)
    assert info.input_shape == (32, 32, 3)
    assert info.notes == ["channels: 3 (RGB; the folder has 1 colour and 60 greyscale "
                          "image(s), 60 converted to RGB)"]
    images, _ = next(iter(make_datasets(info, batch_size=100)[0]))
    assert images.shape[-1] == 3


def test_an_rgba_image_does_not_break_the_jpegs(digits):
    _png(digits, "train", 1, "a_rgba.png", np.full((28, 28, 4), 200, np.uint8))
    jpeg = tf.io.encode_jpeg(np.full((28, 28, 3), 90, np.uint8)).numpy()
    (digits / "train" / "2" / "b.jpg").write_bytes(jpeg)
    info = _inspect(digits)
    assert info.input_shape[-1] == 3 and info.train_count == 42
    train, _ = make_datasets(info, batch_size=64)
    assert sum(len(y) for _, y in train) == 42


def test_greyscale_folder_and_the_channels_option(digits):
    assert _inspect(digits).input_shape == (32, 32, 1)
    info = _inspect(digits, channels=3)
    assert info.input_shape == (32, 32, 3) and info.notes[0].startswith("channels: 3 (--channels")
    with pytest.raises(DataError, match="--channels: applies to folder: data"):
        inspect_data(parse_source("idx:/tmp"), channels=1)


def test_hidden_folders_and_files_are_not_classes_or_images(digits):
    (digits / "train" / ".ipynb_checkpoints").mkdir()
    (digits / "train" / ".ipynb_checkpoints" / "x.png").write_bytes(b"junk")
    (digits / "val" / ".ipynb_checkpoints").mkdir()
    (digits / "train" / "3" / ".hidden.png").write_bytes(b"junk")
    info = _inspect(digits)
    assert info.class_names == [str(i) for i in range(10)] and info.train_count == 40


def test_one_class_folder_is_refused(tmp_path):
    root = mnist_folder(tmp_path / "digits", n_train=40, n_val=20)
    for split in ("train", "val"):
        for folder in (root / split).iterdir():
            if folder.name != "1":
                for path in folder.iterdir():
                    path.unlink()
                folder.rmdir()
    with pytest.raises(DataError, match=r"needs at least 2 class subfolders; found only '1'"):
        _inspect(root)


def test_idx_labels_with_a_stray_id_are_refused(tmp_path):
    idx = tmp_path / "idx"
    idx.mkdir()
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (idx / name).write_bytes((REAL_MNIST / name).read_bytes())
    labels = bytearray((REAL_MNIST / "train-labels-idx1-ubyte").read_bytes())
    labels[8] = 255  # the first training label
    (idx / "train-labels-idx1-ubyte").write_bytes(bytes(labels))
    with pytest.raises(DataError, match=r"class ids run 0..255 \(256 classes\), but only 11 of "
                                        r"them occur; ids held by under 1 % of the labels: "
                                        r"\[255\]"):
        inspect_data(parse_source(f"idx:{idx}"))


@needs_tfds
@pytest.mark.parametrize("text", ["{", "{}"])
def test_a_damaged_tfds_description_names_its_file(tmp_path, text):
    name = tfds_digits(tmp_path, n_train=20, n_val=10)
    (info_file,) = (tmp_path / name).glob("*/dataset_info.json")
    json.loads(info_file.read_text())  # a valid description before the damage
    info_file.write_text(text)
    with pytest.raises(DataError, match=f"--data-dir: {info_file} does not describe"):
        inspect_data(parse_source(f"tfds:{name}"), data_dir=tmp_path, image_size=32)
