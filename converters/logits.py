"""The pre-softmax logits of a classifier, in Keras and in its converted flatbuffer.

A softmax saturates: two models whose logits differ by 2 on one class give outputs that
agree to 1e-6 on most inputs. Parity therefore compares the logits when the model ends
in a softmax: :func:`keras_logits` builds a Keras model that stops before it, and
:func:`flatbuffer_logits` marks the input tensor of the flatbuffer's final ``SOFTMAX`` as
the graph's output (the op still runs; nothing else changes).
"""

import flatbuffers
import tensorflow as tf

from horq_keras.tflite.check import TFLITE_IDENTIFIER
from horq_keras.tflite.graph import read_graph

__all__ = ["flatbuffer_logits", "keras_logits"]


def _is_softmax(activation):
    return getattr(activation, "__name__", None) == "softmax"


def keras_logits(model):
    """A model computing ``model``'s pre-softmax logits, or None when it has no final softmax.

    Handles a final ``Softmax`` layer, a final ``Activation("softmax")`` and a final
    layer with ``activation="softmax"`` (rebuilt with a linear activation and the same
    weights; ``model`` is not changed).
    """
    if len(model.outputs) != 1:
        return None
    layer, node_index, _ = model.outputs[0]._keras_history
    inputs = layer.get_input_at(node_index)  # this model's call of a possibly shared layer
    if isinstance(layer, tf.keras.layers.Softmax) or (
        isinstance(layer, tf.keras.layers.Activation) and _is_softmax(layer.activation)
    ):
        return tf.keras.Model(model.inputs, inputs, name=f"{model.name}_logits")
    if not _is_softmax(getattr(layer, "activation", None)):
        return None
    linear = type(layer).from_config({**layer.get_config(), "activation": "linear",
                                      "name": f"{layer.name}_logits"})
    outputs = linear(inputs)
    linear.set_weights(layer.get_weights())
    return tf.keras.Model(model.inputs, outputs, name=f"{model.name}_logits")


def flatbuffer_logits(flatbuffer):
    """``flatbuffer`` with its output moved to the float input of its final ``SOFTMAX``.

    Returns the new flatbuffer (bytes), or None when the single output is not a float
    ``SOFTMAX`` result (for example an int8 model's dequantized probabilities).
    """
    graph = read_graph(flatbuffer)
    if len(graph.outputs) != 1:
        return None
    softmax = graph.producer(graph.outputs[0])
    if softmax is None or softmax.name != "SOFTMAX":
        return None
    logits = softmax.inputs[0]
    if logits.dtype != "float32":
        return None
    model = graph.model
    model.subgraphs[0].outputs = [logits.index]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())
