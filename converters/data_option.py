"""The ``--data`` / ``--labels`` / ``--samples`` options of ``convert --verify`` and ``verify``.

``--data`` names real inputs for the parity check:

- ``mnist``: the MNIST test set from :func:`horq_keras.datasets.load_mnist`'s default
  location (``$HORQ_KERAS_MNIST_DIR``, then ``./data/mnist``), with its labels, scaled
  like ``horq-keras train`` scales it;
- ``idx:DIR``: the same from the MNIST IDX files in ``DIR``;
- ``PATH.npy``: an array of inputs (samples on axis 0, already scaled as the model
  expects), with optional class ids from ``--labels PATH.npy``.

The sample count (``verify --samples N``, ``convert --verify N``) keeps the first N
samples (default :data:`DATA_SAMPLES`); without ``--data``, N synthetic samples are used
(see :mod:`.parity_data`).
"""

import os

__all__ = ["DATA_SAMPLES", "SAMPLES_HELP", "add_data_options", "data_from_options"]

#: Samples of ``--data`` used by default.
DATA_SAMPLES = 1000
#: Help of the sample count options.
SAMPLES_HELP = (f"the first N samples of --data (default {DATA_SAMPLES}), or N synthetic ones "
                f"(default 64)")


def add_data_options(parser):
    """Add ``--data`` and ``--labels`` to ``parser``."""
    parser.add_argument("--data", metavar="mnist|idx:DIR|PATH.npy",
                        help="real inputs for the parity check: the MNIST test set (from "
                        "./data/mnist or $HORQ_KERAS_MNIST_DIR, or the IDX files in DIR), or "
                        "an .npy array of inputs scaled as the model expects; default: "
                        "synthetic inputs that reach every class")
    parser.add_argument("--labels", metavar="PATH.npy",
                        help="class ids of the --data PATH.npy inputs: the report then gives "
                        "Keras and TFLite accuracy")


def _load_npy(path, option):
    if not path.endswith(".npy"):
        raise ValueError(f"{option} must be `mnist`, `idx:DIR` or a .npy file; got {path!r}.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{option}: no such file: {path!r}.")
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{option}: {path!r} is not a readable .npy array ({error}).") from None


def _mnist(directory, samples):
    from horq_keras.datasets import load_mnist, scale_images

    try:
        _, (images, labels) = load_mnist(directory)
    except (FileNotFoundError, ValueError) as error:
        raise type(error)(f"--data: {error}") from None
    where = directory or "the default location"
    return (scale_images(images[:samples]).numpy(), labels[:samples],
            f"MNIST test set from {where}")


def data_from_options(data, labels, samples):
    """The :class:`~.parity_data.ParityData` of ``--data``/``--labels`` and the sample
    count, or the count of synthetic samples (None: the default) without ``--data``.

    Raises ``ValueError`` / ``FileNotFoundError`` naming the option for a bad value.
    """
    from horq_keras.converters.parity_data import ParityData

    if data is None:
        if labels is not None:
            raise ValueError("--labels needs --data PATH.npy (the inputs they label).")
        return samples
    samples = samples or DATA_SAMPLES
    if data == "mnist" or data.startswith("idx:"):
        if labels is not None:
            raise ValueError("--labels goes with --data PATH.npy; MNIST has its own labels.")
        directory = None if data == "mnist" else data[len("idx:"):]
        if directory == "":
            raise ValueError("--data idx:DIR needs a directory, e.g. idx:data/mnist.")
        inputs, labels, source = _mnist(directory, samples)
    else:
        inputs = _load_npy(data, "--data")[:samples]
        label_path, labels = labels, (None if labels is None else
                                      _load_npy(labels, "--labels")[:samples])
        source = data + ("" if labels is None else f" with labels {label_path}")
    return ParityData([inputs], labels, f"{source}, first {len(inputs)} samples")
