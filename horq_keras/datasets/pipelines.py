"""Training data for ``horq-keras train``: ``mnist | idx:DIR | folder:DIR | tfds:NAME``.

Two steps, so that every data error is found before the output folder is touched:
:func:`inspect_data` checks the source and reads what it is cheap to read (class
names, counts, image shape), raising :class:`DataError` with one line that names
``--data`` or ``--data-dir``; :func:`make_datasets` then builds the ``tf.data``
pipelines ``(train, val)`` of ``(image float32 in [0, 1], integer label)`` batches.

Sources:

- ``mnist`` — the MNIST IDX files, SHA-256-checked, from ``--data-dir``,
  ``$HORQ_KERAS_MNIST_DIR`` or ``./data/mnist`` (never downloaded).
- ``idx:DIR`` — any dataset in MNIST's IDX layout (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-...``; plain or ``.gz``), no checksums. The class
  count is the largest class id + 1; ids that leave most of ``0..max`` unused (a stray
  255 in a 10-class label file) are refused.
- ``folder:DIR`` — ``DIR/train/<class>/*`` and ``DIR/val/<class>/*``, JPEG or PNG,
  checked by :func:`.folders.read_folder`: every image decodes (or is skipped by name
  with ``skip_bad_images``), the channels are decided from the whole folder.
- ``tfds:NAME`` — a dataset prepared by ``tensorflow-datasets`` in ``--data-dir``
  (``DIR/NAME/<version>/``, read with ``tfds.builder_from_directory``, never
  downloaded); splits ``train`` and ``validation`` (else ``test``). Needs the
  optional extra ``pip install 'horq-keras[tfds]'``.

Pipelines: IDX data as in :func:`.mnist.mnist_datasets` (no augmentation).
Folders and TFDS (Group-Net §4.1, the standard ImageNet recipe): decode in parallel,
resize the shorter side to ``image_size / 0.875``, ``cache()`` when that fits in
:data:`CACHE_BYTES`; training takes a random-resized crop (area 8–100 %, aspect 3/4–4/3)
to ``image_size`` and a random horizontal flip, evaluation the centre crop. Order and
augmentation are deterministic under the seed (stateless random ops fed by
``Dataset.random(seed)``); ``prefetch(AUTOTUNE)`` at the end.
"""

import dataclasses
import pathlib

import numpy as np
import tensorflow as tf

from horq_keras.datasets import mnist
from horq_keras.datasets.folders import FolderError, read_folder
from horq_keras.datasets.sources import DataSource, parse_source

__all__ = ["CACHE_BYTES", "DataError", "DataInfo", "DataSource", "inspect_data",
           "make_datasets", "parse_source"]

#: Largest estimated size of the decoded, resized images that ``cache()`` keeps in memory.
CACHE_BYTES = 1 << 30

#: Resize factor of the ImageNet evaluation crop (224 of 256).
CROP_FRACTION = 0.875

#: IDX labels: at least this share of the ids ``0..max`` must occur (dense class ids).
DENSE_IDS = 0.5


class DataError(ValueError):
    """Unusable training data; the message is one line naming the option to fix."""


@dataclasses.dataclass
class DataInfo:
    """What :func:`inspect_data` found; :func:`make_datasets` builds pipelines from it."""

    source: DataSource
    input_shape: tuple
    num_classes: int
    train_count: int
    val_count: int
    image_size: int = None
    arrays: tuple = None  # IDX: ((x_train, y_train), (x_val, y_val))
    files: tuple = None  # folder: ((paths, labels) train, (paths, labels) val)
    tfds_builder: object = None
    tfds_splits: tuple = None
    skipped: list = dataclasses.field(default_factory=list)  # folder: files left out
    class_names: list = None  # class names in class-id order
    notes: list = dataclasses.field(default_factory=list)  # decisions worth printing

    def steps_per_epoch(self, batch_size):
        """Training batches per epoch."""
        return -(-self.train_count // batch_size)

    def describe(self):
        lines = [f"data {self.source}: {self.train_count} training and {self.val_count} "
                 f"validation images of shape {self.input_shape}, {self.num_classes} classes",
                 *self.notes]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} image file(s) that do not decode "
                         f"(--skip-bad-images)")
        return "\n".join(lines)


def _idx_info(source, data_dir, limit_train, limit_val):
    if source.kind == "mnist":
        option = "--data-dir"
        try:
            directory = mnist.mnist_directory(data_dir, argument="--data-dir")
        except mnist.MnistNotFoundError as error:
            raise DataError(f"{option}: {error}") from error
        loader = mnist.load_mnist
    else:
        directory, option = pathlib.Path(source.location), f"--data {source}"
        if not directory.is_dir():
            raise DataError(f"{option}: directory {directory} does not exist.")
        loader = mnist.load_idx
    try:
        (x_train, y_train), (x_val, y_val) = loader(directory)
    except (mnist.MnistNotFoundError, mnist.MnistDataError) as error:
        raise DataError(f"{option}: {error}") from error
    x_train, y_train = x_train[:limit_train], y_train[:limit_train]
    x_val, y_val = x_val[:limit_val], y_val[:limit_val]
    if x_train.ndim != 3 or len(x_train) == 0 or len(x_val) == 0:
        raise DataError(f"{option}: expected (N, height, width) images with N >= 1 in both "
                        f"splits; got {x_train.shape} and {x_val.shape}.")
    num_classes = _dense_class_count(np.concatenate([y_train, y_val]), option)
    return DataInfo(source, (*x_train.shape[1:], 1), num_classes, len(x_train), len(x_val),
                    arrays=((x_train, y_train), (x_val, y_val)),
                    class_names=[str(i) for i in range(num_classes)])


def _dense_class_count(labels, option):
    """The class count ``max id + 1`` of IDX labels, refused when most of ``0..max``
    does not occur (a stray id would add classes that no image has)."""
    ids = np.unique(labels)
    count = int(ids.max()) + 1
    if len(ids) < 2:
        raise DataError(f"{option}: the labels hold {len(ids)} class id ({ids.tolist()}); a "
                        f"classifier needs at least 2.")
    if len(ids) < DENSE_IDS * count:
        rare = [int(i) for i in ids if np.sum(labels == i) < 0.01 * len(labels)]
        raise DataError(f"{option}: class ids run 0..{count - 1} ({count} classes), but only "
                        f"{len(ids)} of them occur; ids held by under 1 % of the labels: "
                        f"{rare}. Class ids must be dense 0..N-1: fix the label files.")
    return count


def _folder_info(source, image_size, limit_train, limit_val, seed, channels, skip_bad_images):
    try:
        folder = read_folder(source.location, option=f"--data {source}", limit_train=limit_train,
                             limit_val=limit_val, seed=seed, channels=channels,
                             skip_bad_images=skip_bad_images)
    except FolderError as error:
        raise DataError(str(error)) from None
    return DataInfo(source, (image_size, image_size, folder.channels), len(folder.classes),
                    len(folder.train[0]), len(folder.val[0]), image_size=image_size,
                    files=(folder.train, folder.val), skipped=folder.skipped,
                    class_names=folder.classes, notes=[folder.channels_note])


def _tfds_info(source, data_dir, image_size):
    option = f"--data {source}"
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise DataError(f"{option}: needs tensorflow-datasets (pip install "
                        f"'horq-keras[tfds]').") from error
    if data_dir is None:
        raise DataError(f"{option}: --data-dir must name the folder that holds the prepared "
                        f"dataset ({source.location}/<version>/); nothing is downloaded.")
    folder = pathlib.Path(data_dir) / source.location
    versions = sorted((p for p in folder.glob("*") if (p / "dataset_info.json").is_file()),
                      key=lambda p: [int(v) if v.isdigit() else v for v in p.name.split(".")])
    if not versions:
        raise DataError(f"--data-dir: {folder} holds no prepared TFDS dataset "
                        f"({source.location}/<version>/dataset_info.json); prepare it with "
                        f"tensorflow-datasets first, nothing is downloaded.")
    info_file = versions[-1] / "dataset_info.json"
    try:  # tensorflow-datasets raises many kinds of error for a damaged description
        builder = tfds.builder_from_directory(str(versions[-1]))
        splits = builder.info.splits
        image, label = builder.info.features["image"], builder.info.features["label"]
    except Exception as error:  # noqa: BLE001
        detail = " ".join(str(error).split())[:200] or type(error).__name__
        raise DataError(f"--data-dir: {info_file} does not describe a prepared dataset with "
                        f"'image' and 'label' features and its splits ({detail}).") from None
    val_split = "validation" if "validation" in splits else "test"
    if "train" not in splits or val_split not in splits:
        raise DataError(f"--data-dir: {versions[-1]} needs a 'train' and a 'validation' or "
                        f"'test' split; it has {', '.join(splits) or 'none'} ({info_file}).")
    channels = image.shape[-1] or 3
    return DataInfo(source, (image_size, image_size, channels), label.num_classes,
                    splits["train"].num_examples, splits[val_split].num_examples,
                    image_size=image_size, tfds_builder=builder,
                    tfds_splits=("train", val_split), class_names=list(label.names))


def inspect_data(source, *, data_dir=None, image_size=None, limit_train=None, limit_val=None,
                 seed=0, channels=None, skip_bad_images=False):
    """Check ``source`` and describe it (see the module docstring); no pipeline yet.

    ``image_size`` is the side of the square inputs of folder and TFDS data (default
    224); IDX data keep their own size. ``channels`` (1 or 3) and ``skip_bad_images``
    apply to folder data (see :func:`.folders.read_folder`).
    """
    if source.kind != "folder":
        for option, value in (("--channels", channels is not None),
                              ("--skip-bad-images", skip_bad_images)):
            if value:
                raise DataError(f"{option}: applies to folder: data; {source} has its own "
                                f"decoded images.")
    if source.kind in ("mnist", "idx"):
        if image_size is not None:
            raise DataError(f"--image-size: applies to folder: and tfds: data; {source} keeps "
                            f"its own image size.")
        if source.kind == "idx" and data_dir is not None:
            raise DataError("--data-dir: applies to --data mnist and tfds:NAME; idx:DIR names "
                            "its directory itself.")
        return _idx_info(source, data_dir, limit_train, limit_val)
    if source.kind == "folder" and data_dir is not None:
        raise DataError("--data-dir: applies to --data mnist and tfds:NAME; folder:DIR names "
                        "its directory itself.")
    image_size = 224 if image_size is None else image_size
    if source.kind == "folder":
        return _folder_info(source, image_size, limit_train, limit_val, seed, channels,
                            skip_bad_images)
    info = _tfds_info(source, data_dir, image_size)
    info.train_count = min(info.train_count, limit_train or info.train_count)
    info.val_count = min(info.val_count, limit_val or info.val_count)
    return info


def _resize_shorter_side(image, side):
    """Resize so that the shorter side is ``side`` pixels, keeping the aspect ratio."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.cast(side, tf.float32) / tf.reduce_min(shape)
    size = tf.cast(tf.math.round(shape * scale), tf.int32)
    return tf.cast(tf.image.resize(image, size, antialias=True), tf.uint8)


def _random_resized_crop(image, size, seed):
    """Random crop of 8–100 % of the area, aspect 3/4–4/3, resized to ``size``; a flip."""
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), tf.zeros([0, 0, 4], tf.float32), seed=seed[0],
        area_range=(0.08, 1.0), aspect_ratio_range=(3 / 4, 4 / 3), max_attempts=10,
        use_image_if_no_bounding_boxes=True)
    crop = tf.slice(image, begin, crop_size)
    crop = tf.image.resize(crop, (size, size), antialias=True)
    return tf.image.stateless_random_flip_left_right(crop, seed=seed[1])


def _centre_crop(image, size):
    return tf.image.resize_with_crop_or_pad(tf.cast(image, tf.float32), size, size)


def _resized_side(info):
    return int(round(info.image_size / CROP_FRACTION))


def _fits(info, count):
    """Whether ``count`` resized images (aspect up to 4:3) fit in :data:`CACHE_BYTES`."""
    return count * _resized_side(info) ** 2 * 4 / 3 * info.input_shape[-1] <= CACHE_BYTES


def _image_datasets(train, val, info, batch_size, seed):
    """Decoded-image datasets ``(image uint8, label)`` -> augmented/cropped batches."""
    size, side, autotune = info.image_size, _resized_side(info), tf.data.AUTOTUNE

    def prepare(dataset):
        return dataset.map(lambda x, y: (_resize_shorter_side(x, side), y),
                           num_parallel_calls=autotune, deterministic=True)

    train = prepare(train)
    if _fits(info, info.train_count):
        train = train.cache().shuffle(min(info.train_count, 16384), seed=seed)
    else:  # files are shuffled before decoding; mix neighbours too
        train = train.shuffle(1024, seed=seed)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(4)
    train = tf.data.Dataset.zip((train, seeds)).map(
        lambda pair, s: (_random_resized_crop(pair[0], size, tf.reshape(s, (2, 2))) / 255.0,
                         pair[1]),
        num_parallel_calls=autotune, deterministic=True)
    val = prepare(val)
    val = val.cache() if _fits(info, info.val_count) else val
    val = val.map(lambda x, y: (_centre_crop(x, size) / 255.0, y), num_parallel_calls=autotune,
                  deterministic=True)
    return (train.batch(batch_size).prefetch(autotune), val.batch(batch_size).prefetch(autotune))


def _decode_file(path, label, channels):
    image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
    return image, label


def make_datasets(info, *, batch_size, seed=0):
    """Batched ``tf.data`` pipelines ``(train, val)`` (see the module docstring)."""
    if info.arrays is not None:
        return mnist.mnist_datasets(batch_size, data=info.arrays, seed=seed)
    channels = info.input_shape[-1]
    if info.files is not None:
        (train_paths, train_labels), (val_paths, val_labels) = info.files

        def files(paths, labels, shuffle):
            dataset = tf.data.Dataset.from_tensor_slices((paths, np.asarray(labels, np.int64)))
            if shuffle:
                dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
            return dataset.map(lambda p, y: _decode_file(p, y, channels),
                               num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

        return _image_datasets(files(train_paths, train_labels,
                                     not _fits(info, info.train_count)),
                               files(val_paths, val_labels, False), info, batch_size, seed)
    import tensorflow_datasets as tfds

    train_split, val_split = info.tfds_splits
    read_config = tfds.ReadConfig(shuffle_seed=seed)
    train = info.tfds_builder.as_dataset(split=f"{train_split}[:{info.train_count}]",
                                         as_supervised=True, shuffle_files=True,
                                         read_config=read_config)
    val = info.tfds_builder.as_dataset(split=f"{val_split}[:{info.val_count}]",
                                       as_supervised=True, shuffle_files=False)
    return _image_datasets(train, val, info, batch_size, seed)
