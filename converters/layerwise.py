"""Layer-wise parity: each converted layer run on exactly its Keras input.

End to end, a sign input of a binary network that sits within float rounding of 0 may
flip under the converted model's other summation order, and in a deep network the flip
spreads: the logits then cannot tell a correct conversion from a slightly wrong one.
Here every Keras layer output that the converted graph holds (:mod:`.layer_map`) is
fed to the converted operators that read it, with the Keras value
(:func:`horq_keras.tflite.taps.tapped`), so the operators between two mapped tensors
compute one layer (or the group of layers the converter fused) from exactly the Keras
input, and their output is compared with the Keras output of that layer. Nothing
spreads from one layer to the next; binary convolutions are exact popcounts, so each
layer is held to float rounding of its own scale: ``atol + rtol * max|Keras output|``.
The layers' values (every mapped tensor, fed and computed, for every sample) run through
LCE's interpreter in this process, in chunks of :data:`CHUNK_BYTES`: a child process
would copy gigabytes through files on a ResNet; the mapping (:mod:`.layer_map`) has run
the same operators in a child process first, so a damaged file fails there.
A quantizer input inside a layer (or a fused group) that lies on its threshold up to
rounding may still flip: a value over the tolerance is excused when it differs by no
more than crossing those thresholds moves it in Keras (:mod:`.layer_ties`), which is
zero for every value whose receptive field holds no such input.
"""

import functools

import numpy as np
import tensorflow as tf

from horq_keras.converters.keras_outputs import keras_outputs, traced
from horq_keras.converters.layer_map import (
    PROBES,
    converted_group,
    keras_taps,
    layer_inputs,
    map_layers,
)
from horq_keras.converters.layer_ties import CrossingReach
from horq_keras.converters.report import LayerParity
from horq_keras.tflite.graph import read_graph
from horq_keras.tflite.runner import run_tflite
from horq_keras.tflite.taps import tapped

__all__ = ["CHUNK_BYTES", "LAYER_TOLERANCES", "layer_parity"]

#: Default ``(atol, rtol)`` of each layer: float models, int8 models.
LAYER_TOLERANCES = {False: (1e-5, 1e-5), True: (1e-2, 0.1)}
#: Bytes of layer values held at once (Keras and converted); samples run in chunks.
CHUNK_BYTES = 256 * 2**20


def _keras_groups(model, mapped, inbound):
    """Per mapped layer name, the Keras layers its converted operators compute: it and
    the layers before it up to mapped layers or the model's inputs, in model order."""
    order = {layer.name: i for i, layer in enumerate(model.layers)}
    inputs = {layer.name for layer in model.layers
              if isinstance(layer, tf.keras.layers.InputLayer)}
    groups = {}
    for name in mapped:
        seen, stack = {name}, [name]
        while stack:
            for source in inbound.get(stack.pop(), ()):
                if (source in order and source not in seen and source not in mapped
                        and source not in inputs):
                    seen.add(source)
                    stack.append(source)
        groups[name] = [model.get_layer(n) for n in sorted(seen, key=order.get)]
    return groups


def _reach(group, inbound, known):
    """:class:`CrossingReach` of ``group`` when a layer of it quantizes its input and every
    layer it reads outside itself is in ``known`` (mapped layers, model inputs), else None."""
    names = {layer.name for layer in group}
    reads = {source for layer in group for source in inbound.get(layer.name, (None,))}
    reach = CrossingReach(group, inbound)
    return reach if reach.quantized and reads - names <= known else None


def layer_parity(model, flatbuffer, inputs, *, atol, rtol, outputs=(),
                 source="the converted model", progress=False):
    """``(layers, values)``: one :class:`~.report.LayerParity` per Keras layer of ``model``
    whose output the converted ``flatbuffer`` holds, in the converted graph's order, and
    the Keras values of ``outputs`` (tensors of ``model``'s graph, such as its pre-softmax
    logits) on ``inputs``, computed in the same Keras run as the layers'.

    ``inputs``: the samples (one array per model input); ``atol``/``rtol``: each
    layer's tolerance ``atol + rtol * max|Keras output|`` (the largest on the probe
    samples).
    """
    names, taps = keras_taps(model, outputs)
    run = traced(taps)
    probe = [x[:PROBES] for x in inputs]
    layer_map = map_layers(model, flatbuffer, probe,
                           keras_outputs(taps, probe, call=run)[:len(names)], names,
                           source=source) if names else None
    if layer_map is None or not layer_map.tensors:
        return [], keras_outputs(taps, inputs, call=run)[len(names):]
    graph = read_graph(flatbuffer)
    mapped = set(layer_map.tensors)
    read = {t.index for op in graph.operators for t in op.inputs if t is not None}
    fed = [t for t in layer_map.tensors if t in read]
    runnable = tapped(flatbuffer, layer_map.tensors, fed)
    groups = {t: [graph.operators[i].name for i in sorted(converted_group(graph, t, mapped)[0])]
              for t in layer_map.tensors}
    inbound = layer_inputs(model)
    keras_groups = _keras_groups(model, set(layer_map.layers), inbound)
    input_names = [tensor._keras_history.layer.name for tensor in model.inputs]
    known = set(layer_map.layers) | set(input_names)
    reaches = [_reach(keras_groups[layer], inbound, known) for layer in layer_map.layers]
    position = {name: i for i, name in enumerate(names)}
    tolerances = [atol + rtol * scale for scale in layer_map.scales]
    per_sample = 8 * sum(int(np.prod(graph.tensors[t].shape)) for t in layer_map.tensors)
    chunk = max(1, CHUNK_BYTES // max(per_sample, 1))
    count = len(inputs[0])
    stats = [_Stats() for _ in layer_map.tensors]
    kept = []
    for start in range(0, count, chunk):
        part = [x[start:start + chunk] for x in inputs]
        expected = keras_outputs(taps, part, call=run)
        kept.append(expected[len(names):])
        by_layer = {name: expected[position[name]] for name in layer_map.layers}
        feeds = [by_layer[layer_map.layers[layer_map.tensors.index(t)]] for t in fed]
        actual = run_tflite(runnable, [*part, *feeds], isolate=False, source=source,
                            progress=progress)
        values = {**by_layer, **dict(zip(input_names, part))}
        for i, (layer, tolerance) in enumerate(zip(layer_map.layers, tolerances)):
            reach = None if reaches[i] is None else functools.partial(reaches[i], values)
            stats[i].add(actual[i], by_layer[layer], tolerance, start, reach)
    layers = [
        stats[i].result(layer, tuple(k.name for k in keras_groups[layer]),
                        graph.tensors[tensor].name, groups[tensor], scale, tolerance, count)
        for i, (tensor, layer, scale, tolerance) in enumerate(
            zip(layer_map.tensors, layer_map.layers, layer_map.scales, tolerances))
    ]
    return layers, [np.concatenate(parts) for parts in zip(*kept)]


class _Stats:
    """Running figures of one layer over the chunks of samples."""

    def __init__(self):
        self.max_abs_diff, self.worst_sample, self.total, self.values = 0.0, None, 0.0, 0
        self.over, self.excused, self.keras_nonfinite, self.tflite_nonfinite = 0, 0, 0, 0
        self.over_samples = set()

    def add(self, actual, expected, tolerance, start, reach):
        """Add the chunk of samples from ``start``; ``reach(rows)``, when given, is what
        threshold crossings can move each value of those samples (:mod:`.layer_ties`)."""
        actual = actual.astype(np.float64)
        self.keras_nonfinite += int(np.sum(~np.isfinite(expected)))
        self.tflite_nonfinite += int(np.sum(~np.isfinite(actual)))
        diff = np.abs(actual - expected).reshape(len(expected), -1)
        diff = np.where(np.isnan(diff), np.inf, diff)
        largest = diff.max(1)
        if largest.max() > self.max_abs_diff or self.worst_sample is None:
            self.max_abs_diff = float(largest.max())
            self.worst_sample = start + int(largest.argmax())
        finite = np.isfinite(diff)
        self.total += float(diff[finite].sum())
        self.values += int(finite.sum())
        over = diff > tolerance
        rows = np.flatnonzero(over.any(1))
        excused = np.zeros_like(over)
        if rows.size and reach is not None:
            allowed = reach(rows).reshape(len(rows), -1)
            excused[rows] = over[rows] & (diff[rows] <= tolerance + allowed)
        self.over += int(over.sum())
        self.excused += int(excused.sum())
        self.over_samples.update((start + np.flatnonzero((over & ~excused).any(1))).tolist())

    def result(self, layer, keras_layers, tensor, operators, scale, tolerance, count):
        return LayerParity(
            layer=layer, keras_layers=keras_layers, tensor=tensor, operators=tuple(operators),
            samples=count, max_abs_diff=self.max_abs_diff,
            mean_abs_diff=self.total / max(self.values, 1), worst_sample=self.worst_sample,
            scale=scale, tolerance=tolerance, elements_over=self.over,
            elements_excused=self.excused, samples_over=len(self.over_samples),
            keras_nonfinite=self.keras_nonfinite, tflite_nonfinite=self.tflite_nonfinite,
        )
