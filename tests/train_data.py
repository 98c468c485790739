"""Small real training data for the trainer's tests, written from the real MNIST files.

- :func:`mnist_folder` — an image folder (``train/<digit>/*.png``, ``val/<digit>/*.png``).
- :func:`tfds_digits` — a TFDS-format dataset prepared offline in a temporary folder
  (a tiny ``GeneratorBasedBuilder``; nothing is downloaded).
"""

import pathlib

import numpy as np
import pytest
import tensorflow as tf

from horq_keras.datasets import load_mnist

REAL_MNIST = pathlib.Path(__file__).resolve().parents[1] / "data" / "mnist"
needs_mnist = pytest.mark.skipif(
    not REAL_MNIST.is_dir(), reason=f"real MNIST not installed at {REAL_MNIST} (run `make data`)"
)

try:
    import tensorflow_datasets as tfds
except ImportError:  # the optional extra [tfds]
    tfds = None
needs_tfds = pytest.mark.skipif(
    tfds is None, reason="tensorflow-datasets is not installed (pip install 'horq-keras[tfds]')"
)


def mnist_subset(n_train, n_val):
    """The first ``n_train`` training and ``n_val`` test digits (uint8, labels)."""
    (x_train, y_train), (x_val, y_val) = load_mnist(REAL_MNIST)
    return (x_train[:n_train], y_train[:n_train]), (x_val[:n_val], y_val[:n_val])


def mnist_folder(root, n_train=200, n_val=60):
    """Write MNIST digits as PNG files in ``root/{train,val}/<digit>/``; return ``root``."""
    root = pathlib.Path(root)
    for split, (images, labels) in zip(("train", "val"), mnist_subset(n_train, n_val)):
        for index, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{index:05d}.png").write_bytes(tf.io.encode_png(image[..., None]).numpy())
    return root


if tfds is not None:

    class TinyDigits(tfds.core.GeneratorBasedBuilder):
        """MNIST digits as a prepared TFDS dataset (``train`` and ``test`` splits)."""

        VERSION = tfds.core.Version("1.0.0")
        SPLITS = {}

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict({
                    "image": tfds.features.Image(shape=(28, 28, 1)),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }),
                supervised_keys=("image", "label"),
            )

        def _split_generators(self, dl_manager):
            return {name: self._generate_examples(arrays)
                    for name, arrays in self.SPLITS.items()}

        def _generate_examples(self, arrays):
            for index, (image, label) in enumerate(zip(*arrays)):
                yield index, {"image": image[..., None], "label": int(label)}


def tfds_digits(data_dir, n_train=200, n_val=60):
    """Prepare ``tiny_digits`` in ``data_dir`` offline; return the dataset's name."""
    train, val = mnist_subset(n_train, n_val)
    TinyDigits.SPLITS = {"train": train, "test": val}
    TinyDigits(data_dir=str(data_dir)).download_and_prepare()
    return "tiny_digits"


def model_weights(model):
    """``{layer name: [arrays]}`` of every layer with weights."""
    return {layer.name: [np.asarray(w) for w in layer.get_weights()]
            for layer in model.layers if layer.get_weights()}
