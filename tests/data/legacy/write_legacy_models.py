"""Write the legacy models of ``tests/test_legacy_models.py`` (run once, then commit).

These files were written with the code of commit 4c73e19 (before modules were moved
around), from the repository root::

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python tests/data/legacy/write_legacy_models.py

Each model is saved as HDF5 (``<name>.h5``) with random batch-norm statistics (so that
BN is not an identity) beside ``<name>.npz``, which holds fixed inputs ``x`` and the
outputs ``y`` the model gave for them when it was saved. Do not re-run this script
after changing the code: the point is that files written by the old code still load.
"""

import pathlib

import horq_keras  # noqa: F401, I001  (selects Keras 2 first)
import numpy as np
import tensorflow as tf

from horq_keras.groupnet import groupnet_resnet
from horq_keras.layers import HORQConv2D, HORQDense

HERE = pathlib.Path(__file__).resolve().parent


def _randomize_batch_norm(model, rng):
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            mean, var = layer.moving_mean, layer.moving_variance
            mean.assign(rng.normal(0.0, 0.5, mean.shape))
            var.assign(rng.uniform(0.5, 2.0, var.shape))


def _save(model, name, inputs, rng):
    _randomize_batch_norm(model, rng)
    model.save(HERE / f"{name}.h5")
    np.savez(HERE / f"{name}.npz", x=inputs, y=model(inputs, training=False).numpy())


def main():
    rng = np.random.default_rng(12)
    tf.random.set_seed(12)
    # A small HORQ network (the MNIST LeNet's weights are 2 MB): every beta form and
    # both HORQ layers, with the LeNet's layout (float first and last layers).
    horq = tf.keras.Sequential([
        tf.keras.Input((12, 12, 1)),
        tf.keras.layers.Conv2D(8, 3, use_bias=False),
        tf.keras.layers.BatchNormalization(),
        HORQConv2D(16, 3, order=2, beta_form="pixel", padding="same", pad_values=1.0),
        tf.keras.layers.BatchNormalization(),
        tf.keras.layers.MaxPool2D(),
        HORQConv2D(16, 3, order=3, beta_form="sample"),
        tf.keras.layers.BatchNormalization(),
        HORQConv2D(16, 3, order=2, beta_form="column"),
        tf.keras.layers.BatchNormalization(),
        tf.keras.layers.Flatten(),
        HORQDense(10, order=2),
        tf.keras.layers.Softmax(),
    ], name="horq_small")
    _save(horq, "horq_small", rng.normal(size=(4, 12, 12, 1)).astype(np.float32), rng)
    groupnet = groupnet_resnet(
        stage_blocks=(1, 1), stage_filters=(8, 16), num_bases=2, activation_bits=2,
        partition="v1", input_shape=(16, 16, 3), num_classes=10,
    )
    _save(groupnet, "groupnet_resnet_k2_w1a2", rng.random((4, 16, 16, 3), dtype=np.float32),
          rng)


if __name__ == "__main__":
    main()
