"""Flatbuffers cut from a converted model: one per operator, for per-operator profiles
and instruction counts."""

import copy

from tensorflow.lite.tools import flatbuffer_utils

from horq_keras.tflite.graph import read_graph

__all__ = ["single_op_flatbuffers"]


def single_op_flatbuffers(flatbuffer):
    """One flatbuffer per operator: the operator alone with only its own tensors and
    constants; its non-constant inputs become the model's inputs."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    subgraph = model.subgraphs[0]
    models = []
    for op in read_graph(flatbuffer).operators:
        operator = copy.copy(subgraph.operators[op.index])
        used = sorted({t for t in operator.inputs if t >= 0} | set(operator.outputs))
        remap = {old: new for new, old in enumerate(used)}
        buffers, tensors = [model.buffers[0]], []  # buffer 0: the empty buffer
        for index in used:
            tensor = copy.copy(subgraph.tensors[index])
            data = model.buffers[tensor.buffer].data
            if data is not None and len(data):
                buffers.append(model.buffers[tensor.buffer])
                tensor.buffer = len(buffers) - 1
            else:
                tensor.buffer = 0
            tensors.append(tensor)
        operator.inputs = [remap[t] if t >= 0 else t for t in operator.inputs]
        operator.outputs = [remap[t] for t in operator.outputs]
        single_subgraph = copy.copy(subgraph)
        single_subgraph.tensors, single_subgraph.operators = tensors, [operator]
        single_subgraph.inputs = [remap[t.index] for t in op.inputs
                                  if t is not None and not t.constant]
        single_subgraph.outputs = [remap[t.index] for t in op.outputs]
        single = copy.copy(model)
        single.subgraphs, single.buffers, single.signatureDefs = [single_subgraph], buffers, []
        models.append((op.name, bytes(flatbuffer_utils.convert_object_to_bytearray(single))))
    return models
