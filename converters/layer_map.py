"""Which tensor of a converted graph holds which Keras layer's output.

LCE shortens tensor names (to 50 characters, model name included), so names cannot
say which tensor is which layer's output. Values can: :func:`map_layers` runs the
flatbuffer on a few probe samples with every float tensor of a layer's shape as an
output (:func:`horq_keras.tflite.taps.tapped`), in rounds. Each round feeds the tensors
mapped so far with their Keras values and pairs each other tensor with the Keras layer
output it matches to rounding (:data:`EXACT`) on the most probe samples: a residual
block whose branch outputs zeros on one sample equals its shortcut there, so a match on
some samples only loses to one on all of them. On a tie the later layer wins, so a
tensor is named after where its value is final. The
graph's outputs are the model's outputs. When a round finds nothing new and the
outputs do not match yet, a wrong value sits in between (in the model or the .tflite):
the first tensor no mapped tensor is computed from that matches a layer within
:data:`MATCH` is paired with it, and the rounds go on past it. Last, the single input
of the operator that computes an output layer reading one layer (logits before a
softmax) is that layer's output.

A layer that lost its own tensor to the converter's fusions (a batch norm folded into
a binary convolution) has none: its operators belong to the next mapped layer.
"""

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from horq_keras.tflite.graph import read_graph
from horq_keras.tflite.runner import run_tflite
from horq_keras.tflite.taps import tapped

__all__ = ["EXACT", "MATCH", "PROBES", "LayerMap", "converted_group", "keras_taps", "layer_inputs",
           "map_layers"]

#: Largest relative mean difference ``mean|t - k| / mean|k|`` (the smallest over the probe
#: samples) of a tensor and the layer output it is paired with as computing that output.
EXACT = 1e-4
#: Largest such difference of a tensor paired with a layer whose value is wrong (a wrong
#: batch-norm statistic, a flipped filter), when nothing else maps: only then, so a
#: loose pair never makes a correct conversion fail; it names where the error starts.
MATCH = 1.0
#: Samples the mapping is measured on.
PROBES = 8


@dataclass(frozen=True)
class LayerMap:
    """``tensors[i]`` (a tensor index of the flatbuffer) holds ``layers[i]``'s output
    (a Keras layer name); ``scales[i]`` is ``max|Keras output|`` on the probe samples."""

    tensors: tuple
    layers: tuple
    scales: tuple


def _only_call(model, layer):
    """The node index of ``layer``'s call in ``model`` when it is called once there."""
    in_model = getattr(model, "_network_nodes", set())  # "<layer>_ib-<node>" of its calls
    calls = [i for i in range(len(layer.inbound_nodes)) if f"{layer.name}_ib-{i}" in in_model]
    return calls[0] if len(calls) == 1 else None


def layer_inputs(model):
    """``{layer name: [names of the layers it reads, in call order]}`` of the layers
    called once in ``model``'s graph."""
    inbound = {}
    for layer in model.layers:
        call = _only_call(model, layer)
        if call is not None:
            node = layer.inbound_nodes[call]
            inbound[layer.name] = [source.name for source in tf.nest.flatten(node.inbound_layers)]
    return inbound


def keras_taps(model, extra=()):
    """``(names, tap model)``: the top-level layers of ``model`` called once in it, with
    one float output (input layers excluded), and a model returning all their outputs,
    then the ``extra`` tensors of ``model``'s graph."""
    names, outputs = [], []
    for layer in model.layers:
        call = _only_call(model, layer)
        if isinstance(layer, tf.keras.layers.InputLayer) or call is None:
            continue
        output = layer.get_output_at(call)
        if isinstance(output, (list, tuple)) or not output.dtype.is_floating:
            continue
        if any(d is None for d in output.shape[1:]):
            continue
        names.append(layer.name)
        outputs.append(output)
    return names, tf.keras.Model(model.inputs, outputs + list(extra), name=f"{model.name}_taps")


def _candidates(graph, shapes):
    """Float tensors computed by an operator with a batch of 1 and a layer's shape."""
    produced = {t.index for op in graph.operators for t in op.outputs if t is not None}
    return [t.index for t in graph.tensors
            if t.index in produced and t.dtype == "float32" and t.shape[:1] == (1,)
            and tuple(t.shape[1:]) in shapes]


def _per_sample(actual, expected):
    """Relative mean difference of each probe sample; infinite on a sample where the
    layer outputs only zeros, which tells nothing (any zero tensor would match it)."""
    actual = actual.astype(np.float64).reshape(len(actual), -1)
    expected = expected.astype(np.float64).reshape(len(expected), -1)
    scale = np.mean(np.abs(expected), axis=1)
    difference = np.mean(np.abs(actual - expected), axis=1)
    return np.divide(difference, scale, out=np.full_like(scale, np.inf), where=scale > 0)


def _relative(actual, expected):
    """The smallest relative mean difference over the probe samples: a sign that flips
    end to end in one sample does not hide a match that the others show."""
    return float(np.min(_per_sample(actual, expected), initial=np.inf))


def _rank(match):
    """Sort key of a ``(samples matched, relative difference, layer position)`` match:
    the most samples within :data:`EXACT`, then the smallest difference, then the later
    layer."""
    matched, error, position = match
    return -matched, error, -position


def _best_layers(candidates, values, keras_outputs, shapes):
    """``{tensor: (samples matched, relative difference, layer position)}``: each
    tensor's best match by :func:`_rank`."""
    best = {}
    for tensor, value in zip(candidates, values):
        matches = []
        for p in shapes[value.shape[1:]]:
            if np.all(np.isfinite(keras_outputs[p])):
                errors = _per_sample(value, keras_outputs[p])
                matches.append((int(np.sum(errors <= EXACT)), float(np.min(errors)), p))
        if matches:
            best[tensor] = min(matches, key=_rank)
    return best


def converted_group(graph, tensor, mapped):
    """``(operators, read)``: the indices of the operators that compute ``tensor`` from
    the ``mapped`` tensors (and the model's inputs and constants), and the non-constant
    tensors they read."""
    producer = {t.index: op for op in graph.operators for t in op.outputs if t is not None}
    operators, stack, read = set(), [tensor], set()
    while stack:
        op = producer.get(stack.pop())
        if op is None or op.index in operators:
            continue
        operators.add(op.index)
        for t in op.inputs:
            if t is not None and not t.constant:
                read.add(t.index)
                if t.index not in mapped:
                    stack.append(t.index)
    return operators, read


def _structural(graph, owner, names, inbound, keras_outputs):
    """Pairs read off the graph's end: when a model output's layer reads one layer and
    the graph's output is computed by a ``SOFTMAX`` from one tensor of that layer's shape,
    that tensor is the layer's output (the logits). Only a softmax: a batch norm folded
    into the operator before it leaves a ``MUL``/``ADD`` at the end whose input is no
    layer's output."""
    producer = {t.index: op for op in graph.operators for t in op.outputs if t is not None}
    position = {name: i for i, name in enumerate(names)}
    taken = set(owner.values())
    fresh = {}
    for tensor in (t.index for t in graph.outputs if t.index in owner):
        layer = owner[tensor]
        sources = inbound.get(names[layer])
        op = producer.get(tensor)
        if (op is None or op.name != "SOFTMAX" or sources is None or len(sources) != 1
                or sources[0] not in position):
            continue
        read = [t for t in op.inputs if t is not None and not t.constant]
        source = position[sources[0]]
        if (len(read) == 1 and read[0].index not in owner and source not in taken
                and read[0].index in producer and read[0].dtype == "float32"
                and tuple(read[0].shape[1:]) == keras_outputs[source].shape[1:]):
            fresh[read[0].index] = source
            taken.add(source)
    return fresh


def map_layers(model, flatbuffer, inputs, keras_outputs, names, *, source="the converted model"):
    """The :class:`LayerMap` of ``flatbuffer`` against ``model`` (see the module docstring).

    ``inputs``: the probe samples (one array per model input); ``keras_outputs``: the
    outputs of :func:`keras_taps`'s model on them, one array per name of ``names``.
    """
    graph = read_graph(flatbuffer)
    shapes = {}
    for position, output in enumerate(keras_outputs):
        shapes.setdefault(tuple(output.shape[1:]), []).append(position)
    candidates = _candidates(graph, shapes)
    outputs = {t.index for t in graph.outputs}
    owner = {}  # tensor -> layer position
    for tensor, output in zip(graph.outputs, model.outputs):
        name = output._keras_history.layer.name
        if name in names and tensor.index in candidates:
            owner[tensor.index] = names.index(name)
    inbound = layer_inputs(model)
    while True:
        read = {t.index for op in graph.operators for t in op.inputs if t is not None}
        fed = sorted(t for t in owner if t in read)
        values = run_tflite(tapped(flatbuffer, candidates, fed),
                            [*inputs, *(keras_outputs[owner[t]] for t in fed)], source=source)
        best = _best_layers(candidates, values, keras_outputs, shapes)
        exact = {t for t, value in zip(candidates, values)
                 if t in owner and _relative(value, keras_outputs[owner[t]]) <= EXACT}
        best = {t: match for t, match in best.items() if t not in owner}
        taken = {}
        for tensor, match in best.items():
            position = match[2]
            if match[0] and (position not in taken
                             or _rank(match) < _rank(best[taken[position]])):
                taken[position] = tensor
        fresh = {tensor: position for position, tensor in taken.items()
                 if position not in owner.values()}
        if not fresh and not outputs <= exact:
            fresh = _loose(graph, best, owner, exact)
        if not fresh:
            fresh = _structural(graph, owner, names, inbound, keras_outputs)
        if not fresh:
            break
        owner.update(fresh)
    order = {t.index: op.index for op in graph.operators for t in op.outputs if t is not None}
    tensors = sorted(owner, key=order.get)
    return LayerMap(
        tensors=tuple(tensors),
        layers=tuple(names[owner[t]] for t in tensors),
        scales=tuple(float(np.max(np.abs(keras_outputs[owner[t]]))) for t in tensors),
    )


def _loose(graph, best, owner, exact):
    """The first tensor (in graph order) that no ``exact``-matching mapped tensor is
    computed from and whose best match is within :data:`MATCH`, with that layer: where a
    wrong value in the model or the .tflite starts, so that what follows it can be
    mapped exactly."""
    inside = set()
    for tensor in exact:
        inside |= converted_group(graph, tensor, set(owner))[1]
    order = {t.index: op.index for op in graph.operators for t in op.outputs if t is not None}
    for tensor in sorted(best, key=order.get):
        _, error, position = best[tensor]
        if tensor not in inside and error <= MATCH and position not in owner.values():
            return {tensor: position}
    return {}
