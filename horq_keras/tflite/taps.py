"""Flatbuffers that expose inner tensors as outputs, or take them as inputs.

:func:`tapped` rewrites the main subgraph of a converted model so that chosen tensors
are outputs (TFLite keeps an output's value instead of reusing its memory) and, for
chosen *fed* tensors, every operator that reads one reads a new graph input instead.
The operators and weights are unchanged: each output is then computed by exactly the
converted operators between the fed tensors (or the model's inputs) and it, which lets
a caller run every part of the graph on inputs of its own choice in one invocation.
"""

import copy

import flatbuffers

from horq_keras.tflite.check import TFLITE_IDENTIFIER
from horq_keras.tflite.graph import _schema, read_graph

__all__ = ["tapped"]


def _empty_buffer(model, schema):
    """Index of a buffer without data (TFLite's buffer 0 is one by convention)."""
    for index, buffer in enumerate(model.buffers or []):
        if buffer.data is None or not len(buffer.data):
            return index
    model.buffers.append(schema.BufferT())
    return len(model.buffers) - 1


def tapped(flatbuffer, outputs, fed=()):
    """``flatbuffer`` with the tensors ``outputs`` (indices) as its outputs, in that
    order, and one new input per tensor of ``fed`` (indices, after the model's own
    inputs, in that order) that every reader of that tensor reads instead.

    The producer of a fed tensor still writes it, so a fed tensor may also be an
    output: it then holds what the converted operators computed. Returns bytes.

    Raises:
        ValueError: an index is not a tensor of the graph, or a fed tensor is a
            constant or one of the model's inputs.
    """
    graph = read_graph(flatbuffer)
    model = graph.model
    subgraph = model.subgraphs[0]
    count = len(subgraph.tensors)
    for index in (*outputs, *fed):
        if not 0 <= index < count:
            raise ValueError(f"tensor index {index} is not a tensor of the graph (0..{count - 1})")
    for index in fed:
        if graph.tensors[index].constant or graph.producer(graph.tensors[index]) is None:
            raise ValueError(f"tensor {index} ({graph.tensors[index].name!r}) is not computed "
                             "by an operator: only computed tensors can be fed")
    empty = _empty_buffer(model, _schema())
    replacement = {}
    for index in fed:
        tensor = copy.copy(subgraph.tensors[index])
        tensor.buffer = empty
        tensor.name = f"{graph.tensors[index].name}:fed".encode()
        subgraph.tensors.append(tensor)
        replacement[index] = len(subgraph.tensors) - 1
    for operator in subgraph.operators:
        if operator.inputs is not None:
            operator.inputs = [replacement.get(int(i), int(i)) for i in operator.inputs]
    subgraph.inputs = [int(i) for i in subgraph.inputs] + [replacement[i] for i in fed]
    subgraph.outputs = [int(i) for i in outputs]
    model.signatureDefs = []  # they name the original inputs and outputs
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())
