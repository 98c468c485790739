"""Pieces of ``benchmarks/horq_latency.py``: the one-operator models of its profile
reproduce the full model's intermediate tensors, and the goal verdicts."""

import pathlib

import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf
from horq_keras.tflite.graph import read_graph
from tensorflow.lite.tools import flatbuffer_utils

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def latency(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import horq_latency

    return horq_latency


def _with_all_outputs(flatbuffer):
    """The model with every operator's output as a model output (to read them all)."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    subgraph = model.subgraphs[0]
    subgraph.outputs = [op.outputs[0] for op in subgraph.operators]
    model.signatureDefs = []
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def test_single_operator_models_reproduce_the_full_model(latency, rng):
    model = latency.stack_model("horq2", 6, 32)
    flatbuffer = latency.convert(model, "horq2")
    graph = read_graph(flatbuffer)
    full = lce.testing.Interpreter(_with_all_outputs(flatbuffer)).interpreter
    x = rng.standard_normal((1, 6, 6, 32)).astype("float32")
    values = {t.index: v for t, v in zip(
        [op.outputs[0] for op in graph.operators], full.predict([x]))}
    values[graph.inputs[0].index] = x

    singles = latency.single_op_flatbuffers(flatbuffer)
    assert [name for name, _ in singles] == [op.name for op in graph.operators]
    for (name, single), op in zip(singles, graph.operators):
        assert len(single) < len(flatbuffer) or len(graph.operators) == 1
        inputs = [values[t.index] for t in op.inputs if t is not None and not t.constant]
        (output,) = lce.testing.Interpreter(single).interpreter.predict(inputs)
        np.testing.assert_array_equal(output, values[op.outputs[0].index], err_msg=name)


def test_goal_verdicts(latency):
    ms = {"float": 20.0, "horq1": 9.0, "horq2": 21.0, "horq3": 28.0}
    result = latency.goals({k: {"min": v, "median": v} for k, v in ms.items()}, [1, 2, 3])
    assert result["order 2 / order 1 <= 2.2"]["min"] == (pytest.approx(21 / 9), False)
    assert result["order 3 / order 1 <= 3.3"]["min"] == (pytest.approx(28 / 9), True)
    assert result["order 1 / float <= 0.5"]["median"] == (pytest.approx(0.45), True)
    assert result["order 2 / float <= 1.0"]["median"] == (pytest.approx(1.05), False)


def test_resnet18_shape(latency):
    model = latency.resnet18("horq1", 64, 8)
    binary = [layer for layer in model.layers if type(layer).__name__ == "HORQConv2D"]
    assert len(binary) == 16  # 4 stages x 2 blocks x 2 convs
    assert all(layer.pad_values == 1.0 for layer in binary)
    assert model.output_shape == (None, 1000)
    float_convs = [layer for layer in model.layers if type(layer) is tf.keras.layers.Conv2D]
    assert [layer.kernel_size for layer in float_convs] == [(7, 7)] + [(1, 1)] * 3
