"""The ``--data`` / ``--data-dir`` / ``--labels`` options of ``convert --verify`` and ``verify``.

``--data`` means what it means for ``horq-keras train`` (:mod:`horq_keras.datasets.sources`):
``mnist``, ``idx:DIR``, ``folder:DIR`` or ``tfds:NAME``, whose **validation split** is the
parity data, prepared as ``train`` prepares it for validation (scaled to [0, 1]; folder and
TFDS images centre-cropped to the model's input size and decoded to its channels), so a
trained model is verified on the data it was validated on. ``PATH.npy`` is an array of
inputs already scaled as the model expects, with optional class ids from
``--labels PATH.npy``.

The sample count (``verify --samples N``, ``convert --verify N``) keeps the first N
samples (default :data:`DATA_SAMPLES`); without ``--data``, N synthetic samples are used
(see :mod:`.parity_data`). Class ids outside the model's classes, or labels that are
not integers, are refused.
"""

import dataclasses
import os
import pathlib

from horq_keras.datasets.sources import source_type

__all__ = ["DATA_SAMPLES", "SAMPLES_HELP", "add_data_options", "data_from_options"]

#: Samples of ``--data`` used by default.
DATA_SAMPLES = 1000
#: Help of the sample count options.
SAMPLES_HELP = (f"the first N samples of --data (default {DATA_SAMPLES}), or N synthetic ones "
                f"(default 64)")
#: Validation images decoded per batch while the parity data is read.
_READ_BATCH = 256


def add_data_options(parser):
    """Add ``--data``, ``--data-dir`` and ``--labels`` to ``parser``."""
    parser.add_argument("--data", type=source_type(arrays=True), default=None,
                        metavar="mnist|idx:DIR|folder:DIR|tfds:NAME|PATH.npy",
                        help="real inputs for the parity check: the validation split of a "
                        "data source as `train` reads it, or an .npy array of inputs scaled "
                        "as the model expects; default: synthetic inputs that reach every "
                        "class")
    parser.add_argument("--data-dir", type=pathlib.Path, default=None,
                        help="MNIST IDX directory of --data mnist (default: "
                        "$HORQ_KERAS_MNIST_DIR, then ./data/mnist), or the TFDS data "
                        "directory of tfds:NAME")
    parser.add_argument("--labels", metavar="PATH.npy",
                        help="class ids of the --data PATH.npy inputs: the report then gives "
                        "Keras and TFLite accuracy")


def _load_npy(path, option):
    if not str(path).endswith(".npy"):
        raise ValueError(f"{option} must be a .npy file; got {path!r}.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{option}: no such file: {path!r}.")
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{option}: {path!r} is not a readable .npy array ({error}).") from None


def _validation_split(source, data_dir, samples, input_shape):
    """The first ``samples`` validation inputs and labels of a dataset source, prepared
    for a model with per-sample ``input_shape`` as ``train`` prepares them."""
    import numpy as np

    from horq_keras.datasets.pipelines import inspect_data, make_datasets

    image_size = None
    if source.kind in ("folder", "tfds"):
        height, width = input_shape[:2]
        if height != width:
            raise ValueError(f"--data {source}: the model's inputs are {height}x{width}; "
                             f"folder: and tfds: data are cropped to square images.")
        image_size = height
    # one training image: a folder's training split is not decoded for nothing
    info = inspect_data(source, data_dir=data_dir, image_size=image_size,
                        limit_train=1 if source.kind == "folder" else None, limit_val=samples)
    if image_size is not None:  # decode every image to the model's channels
        info = dataclasses.replace(info, input_shape=(image_size, image_size, input_shape[-1]))
    _, val = make_datasets(info, batch_size=_READ_BATCH)
    batches = list(val.as_numpy_iterator())
    if not batches:
        raise ValueError(f"--data {source}: the validation split has no readable image.")
    return (np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches]),
            f"validation split of {source}")


def _check_labels(labels, num_classes, option):
    import numpy as np

    if labels.ndim != 1:
        raise ValueError(f"{option}: class ids must be a 1-D array; got shape {labels.shape}.")
    if not np.issubdtype(labels.dtype, np.integer):
        if not (np.issubdtype(labels.dtype, np.floating) and np.all(np.isfinite(labels))
                and np.all(labels == np.round(labels))):
            raise ValueError(f"{option}: class ids must be integers; got {labels.dtype} "
                             f"values such as {labels.flat[0]!r}.")
        labels = labels.astype(np.int64)
    if num_classes is not None and len(labels):
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            raise ValueError(f"{option}: class ids must be in 0..{num_classes - 1} (the "
                             f"model's {num_classes} classes); got ids {low}..{high}.")
    return labels


def data_from_options(data, labels, samples, *, data_dir=None, input_shape=None,
                      num_classes=None):
    """The :class:`~.parity_data.ParityData` of ``--data``/``--labels`` and the sample
    count, or the count of synthetic samples (None: the default) without ``--data``.

    Args:
        data: the parsed ``--data`` (:class:`~horq_keras.datasets.sources.DataSource`)
            or None.
        labels: the ``--labels`` path or None.
        samples: the sample count, or None for the default.
        data_dir: ``--data-dir``.
        input_shape: the model's per-sample input shape (crop size and channels of
            folder: and tfds: images).
        num_classes: the model's class count (class ids must be below it), or None.

    Raises ``ValueError`` / ``FileNotFoundError`` naming the option for a bad value.
    """
    from horq_keras.converters.parity_data import ParityData
    from horq_keras.datasets.pipelines import DataError

    if data is None:
        if labels is not None:
            raise ValueError("--labels needs --data PATH.npy (the inputs they label).")
        if data_dir is not None:
            raise ValueError("--data-dir needs --data mnist or --data tfds:NAME.")
        return samples
    samples = samples or DATA_SAMPLES
    if data.kind == "npy":
        if data_dir is not None:
            raise ValueError("--data-dir applies to --data mnist and tfds:NAME, not to an "
                             ".npy array.")
        inputs = _load_npy(data.location, "--data")[:samples]
        label_path, labels = labels, (None if labels is None else
                                      _load_npy(labels, "--labels")[:samples])
        if labels is not None:
            labels = _check_labels(labels, num_classes, "--labels")
        source = str(data) + ("" if labels is None else f" with labels {label_path}")
    else:
        if labels is not None:
            raise ValueError(f"--labels goes with --data PATH.npy; --data {data} has its own "
                             f"labels.")
        try:
            inputs, labels, source = _validation_split(data, data_dir, samples, input_shape)
        except DataError as error:
            raise ValueError(str(error)) from None
        labels = _check_labels(labels, num_classes, f"--data {data}")
    return ParityData([inputs], labels, f"{source}, first {len(inputs)} samples")
