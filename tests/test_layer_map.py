"""Which converted tensor holds which Keras layer's output (:mod:`.layer_map`)."""

import numpy as np
import tensorflow as tf

import horq_keras  # noqa: F401
from horq_keras.converters.conversion import convert_to_flatbuffer
from horq_keras.converters.keras_outputs import keras_outputs
from horq_keras.converters.layer_map import PROBES, keras_taps, map_layers
from horq_keras.converters.layerwise import layer_parity
from horq_keras.tflite.graph import read_graph


def _residual_block():
    """Shortcut ``2x`` plus a branch ``relu(3x)``, both exact in float: on a sample whose
    input is negative the branch outputs zeros and the sum equals the shortcut."""
    inputs = tf.keras.Input((4, 4, 2))
    shortcut = tf.keras.layers.Rescaling(2.0, name="shortcut")(inputs)
    triple = tf.keras.initializers.Constant(3 * np.eye(2)[None, None])
    branch = tf.keras.layers.Conv2D(2, 1, use_bias=False, kernel_initializer=triple,
                                    name="branch_conv")(inputs)
    branch = tf.keras.layers.ReLU(name="branch")(branch)
    added = tf.keras.layers.Add(name="add")([shortcut, branch])
    outputs = tf.keras.layers.Conv2D(3, 1, name="head")(added)
    return tf.keras.Model(inputs, outputs)


def test_a_branch_dead_on_one_sample_does_not_pair_its_sum_with_the_shortcut():
    tf.keras.utils.set_random_seed(0)
    model = _residual_block()
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 1.0, (2 * PROBES, 4, 4, 2)).astype(np.float32)
    x[0] = -x[0]  # the branch is dead on the first probe sample only
    flatbuffer = convert_to_flatbuffer(model)
    names, taps = keras_taps(model)
    probe = [x[:PROBES]]
    layer_map = map_layers(model, flatbuffer, probe, keras_outputs(taps, probe), names)
    graph = read_graph(flatbuffer)
    paired = dict(zip(layer_map.layers, (graph.tensors[t].name for t in layer_map.tensors)))
    assert "shortcut" in paired["shortcut"] and "add" in paired["add"], paired
    layers, _ = layer_parity(model, flatbuffer, [x], atol=1e-5, rtol=1e-5)
    assert {layer.layer for layer in layers} >= {"shortcut", "branch", "add", "head"}
    assert all(layer.elements_over == 0 for layer in layers), layers
