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
"""

import numpy as np

from horq_keras.converters.keras_outputs import keras_outputs
from horq_keras.converters.layer_map import PROBES, keras_taps, map_layers
from horq_keras.converters.report import LayerParity
from horq_keras.tflite.graph import read_graph
from horq_keras.tflite.runner import run_tflite
from horq_keras.tflite.taps import tapped

__all__ = ["CHUNK_BYTES", "LAYER_TOLERANCES", "layer_parity"]

#: Default ``(atol, rtol)`` of each layer: float models, int8 models.
LAYER_TOLERANCES = {False: (1e-5, 1e-5), True: (1e-2, 0.1)}
#: Bytes of layer values held at once (Keras and converted); samples run in chunks.
CHUNK_BYTES = 256 * 2**20


def _groups(graph, mapped):
    """Per mapped tensor, the names of the operators that compute it from the mapped
    tensors before it (or the model's inputs and constants), in graph order."""
    producer = {t.index: op for op in graph.operators for t in op.outputs if t is not None}
    groups = {}
    for tensor in mapped:
        seen, stack = set(), [tensor]
        while stack:
            op = producer.get(stack.pop())
            if op is None or op.index in seen:
                continue
            seen.add(op.index)
            stack += [t.index for t in op.inputs
                      if t is not None and not t.constant and t.index not in mapped]
        groups[tensor] = [graph.operators[i].name for i in sorted(seen)]
    return groups


def layer_parity(model, flatbuffer, inputs, *, atol, rtol, source="the converted model",
                 progress=False):
    """One :class:`~.report.LayerParity` per Keras layer of ``model`` whose output the
    converted ``flatbuffer`` holds, in the converted graph's order.

    ``inputs``: the samples (one array per model input); ``atol``/``rtol``: each
    layer's tolerance ``atol + rtol * max|Keras output|`` (the largest on the probe
    samples).
    """
    names, taps = keras_taps(model)
    if not names:
        return []
    probe = [x[:PROBES] for x in inputs]
    layer_map = map_layers(model, flatbuffer, probe, keras_outputs(taps, probe), names,
                           source=source)
    if not layer_map.tensors:
        return []
    graph = read_graph(flatbuffer)
    mapped = set(layer_map.tensors)
    read = {t.index for op in graph.operators for t in op.inputs if t is not None}
    fed = [t for t in layer_map.tensors if t in read]
    runnable = tapped(flatbuffer, layer_map.tensors, fed)
    groups = _groups(graph, mapped)
    position = {name: i for i, name in enumerate(names)}
    tolerances = [atol + rtol * scale for scale in layer_map.scales]
    per_sample = 8 * sum(int(np.prod(graph.tensors[t].shape)) for t in layer_map.tensors)
    chunk = max(1, CHUNK_BYTES // max(per_sample, 1))
    count = len(inputs[0])
    stats = [_Stats() for _ in layer_map.tensors]
    for start in range(0, count, chunk):
        part = [x[start:start + chunk] for x in inputs]
        expected = keras_outputs(taps, part)
        by_layer = {name: expected[position[name]] for name in layer_map.layers}
        feeds = [by_layer[layer_map.layers[layer_map.tensors.index(t)]] for t in fed]
        actual = run_tflite(runnable, [*part, *feeds], source=source, progress=progress)
        for i, (layer, tolerance) in enumerate(zip(layer_map.layers, tolerances)):
            stats[i].add(actual[i], by_layer[layer], tolerance, start)
    return [
        stats[i].result(layer, graph.tensors[tensor].name, groups[tensor], scale,
                        tolerance, count)
        for i, (tensor, layer, scale, tolerance) in enumerate(
            zip(layer_map.tensors, layer_map.layers, layer_map.scales, tolerances))
    ]


class _Stats:
    """Running figures of one layer over the chunks of samples."""

    def __init__(self):
        self.max_abs_diff, self.worst_sample, self.total, self.values = 0.0, None, 0.0, 0
        self.over, self.keras_nonfinite, self.tflite_nonfinite = 0, 0, 0
        self.over_samples = set()

    def add(self, actual, expected, tolerance, start):
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
        self.over += int(over.sum())
        self.over_samples.update((start + np.flatnonzero(over.any(1))).tolist())

    def result(self, layer, tensor, operators, scale, tolerance, count):
        return LayerParity(
            layer=layer, tensor=tensor, operators=tuple(operators), samples=count,
            max_abs_diff=self.max_abs_diff, mean_abs_diff=self.total / max(self.values, 1),
            worst_sample=self.worst_sample, scale=scale, tolerance=tolerance,
            elements_over=self.over, samples_over=len(self.over_samples), keras_nonfinite=self.keras_nonfinite,
            tflite_nonfinite=self.tflite_nonfinite,
        )
