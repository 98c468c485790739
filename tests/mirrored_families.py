"""Child process of ``test_distribute_mirrored.py``: each model family under MirroredStrategy.

Logical devices can only be configured before TensorFlow starts, so this runs in a fresh
interpreter: it splits the CPU into two logical devices, creates the ``mirrored``
:class:`~horq_keras.distribute.Distribution` (which picks them up), trains each family a
few steps with ``Model.fit`` (built through the model registry, as ``horq-keras train``
builds it) and prints one JSON line per family.
"""

import json
import sys

import horq_keras  # noqa: F401  (selects Keras 2 before TensorFlow is used)
import numpy as np
import tensorflow as tf


from horq_keras.training import registry
from horq_keras.training.distribute import Distribution

#: One small member of every model family of the registry: name -> (model args, input).
FAMILIES = {
    "horq_lenet": ({"order": 2}, (28, 28, 1)),
    "horq_resnet18": ({"order": 2, "width": 8}, (16, 16, 1)),
    "groupnet_resnet18": ({"num_bases": 2, "stage_filters": (8, 8, 8, 8)}, (16, 16, 1)),
    "groupnet_resnet50": ({"num_bases": 2, "activation_bits": 2,
                           "stage_filters": (4, 4, 4, 4)}, (16, 16, 1)),
    "groupnet_alexnet": ({"num_bases": 2, "fc_units": 32}, (32, 32, 1)),
}

#: Every registered model -> the family member above that runs its code: the other
#: ResNet/AlexNet builders are partitions (layer-wise, K = 1) of the same blocks.
FAMILY_OF = {
    "horq_lenet": "horq_lenet", "horq_resnet18": "horq_resnet18",
    "groupnet_resnet18": "groupnet_resnet18", "groupnet_resnet34": "groupnet_resnet18",
    "layerwise_resnet18": "groupnet_resnet18", "binary_resnet18": "groupnet_resnet18",
    "groupnet_resnet50": "groupnet_resnet50",
    "groupnet_alexnet": "groupnet_alexnet", "layerwise_alexnet": "groupnet_alexnet",
    "binary_alexnet": "groupnet_alexnet",
}

STEPS = 3


def replica_values(model):
    """Each trainable variable's value on each replica."""
    return [[value.numpy() for value in model.distribute_strategy.experimental_local_results(v)]
            for v in model.trainable_variables]


def train_family(distribution, name, model_args, input_shape):
    with distribution.strategy.scope():
        model = registry.build(name, model_args, input_shape=input_shape, num_classes=10)
        model.compile(tf.keras.optimizers.legacy.Adam(distribution.learning_rate),
                      "sparse_categorical_crossentropy")
    before = [v.numpy() for v in model.trainable_variables]
    rng = np.random.default_rng(0)
    images = rng.random((distribution.global_batch * STEPS, *input_shape), dtype=np.float32)
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
    tf.config.set_logical_device_configuration(  # before TensorFlow starts: in main only
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
    )
    distribution = Distribution.create(strategy="mirrored", batch_size=4, learning_rate=1e-2,
                                       tf_config="")
    print(json.dumps({"describe": distribution.describe()}), flush=True)
    for name in sys.argv[1:] or FAMILIES:
        print(json.dumps({"family": name, **train_family(distribution, name, *FAMILIES[name])}),
              flush=True)


if __name__ == "__main__":
    main()
