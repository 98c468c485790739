"""Child process of ``test_distribute_mirrored.py``: each model family under MirroredStrategy.

Logical devices can only be configured before TensorFlow starts, so this runs in a fresh
interpreter: it splits the CPU into two logical devices, creates the ``mirrored``
:class:`~horq_keras.distribute.Distribution` (which picks them up), trains each family a
few steps with ``Model.fit`` and prints one JSON line per family.
"""

import json
import sys

import horq_keras  # noqa: F401  (selects Keras 2 before TensorFlow is used)
import numpy as np
import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
)

from horq_keras.training.distribute import Distribution  # noqa: E402
from horq_keras.groupnet import groupnet_alexnet, groupnet_resnet  # noqa: E402
from horq_keras.models import horq_lenet  # noqa: E402

#: One small member of every model family: (builder, keyword arguments).
FAMILIES = {
    "horq_lenet": (horq_lenet, {"order": 2}),
    "float_lenet": (horq_lenet, {"variant": "float"}),
    "groupnet_resnet_basic": (groupnet_resnet, {
        "stage_blocks": (1, 1), "stage_filters": (8, 16), "num_bases": 2,
        "input_shape": (16, 16, 1)}),
    "groupnet_resnet_bottleneck": (groupnet_resnet, {
        "stage_blocks": (1, 1), "stage_filters": (4, 8), "bottleneck": True, "num_bases": 2,
        "activation_bits": 2, "input_shape": (16, 16, 1)}),
    "groupnet_alexnet": (groupnet_alexnet, {
        "num_bases": 2, "fc_units": 32, "input_shape": (32, 32, 1)}),
}

STEPS = 3


def replica_values(model):
    """Each trainable variable's value on each replica."""
    return [[value.numpy() for value in model.distribute_strategy.experimental_local_results(v)]
            for v in model.trainable_variables]


def train_family(distribution, builder, kwargs):
    with distribution.strategy.scope():
        model = builder(num_classes=10, **kwargs)
        model.compile(tf.keras.optimizers.legacy.Adam(distribution.learning_rate),
                      "sparse_categorical_crossentropy")
    before = [v.numpy() for v in model.trainable_variables]
    rng = np.random.default_rng(0)
    shape = model.input_shape[1:]
    images = rng.random((distribution.global_batch * STEPS, *shape), dtype=np.float32)
    labels = rng.integers(0, 10, len(images))
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(
        distribution.global_batch)
    history = model.fit(dataset, epochs=1, verbose=0)
    values = replica_values(model)
    return {
        "loss": history.history["loss"][-1],
        "replicas": [len(per_var) for per_var in values][0],
        "replicas_identical": all(np.array_equal(per_var[0], per_var[1]) for per_var in values),
        "changed": sum(not np.array_equal(b, per_var[0])
                       for b, per_var in zip(before, values)),
        "variables": len(values),
    }


def main():
    distribution = Distribution.create(strategy="mirrored", batch_size=4, learning_rate=1e-2,
                                       tf_config="")
    print(json.dumps({"describe": distribution.describe()}), flush=True)
    for name in sys.argv[1:] or FAMILIES:
        builder, kwargs = FAMILIES[name]
        print(json.dumps({"family": name, **train_family(distribution, builder, kwargs)}),
              flush=True)


if __name__ == "__main__":
    main()
