"""``horq_keras.tflite.arm_cost``: a model's aarch64 cost from counts by operator signature
where the cache holds them and from the fitted model elsewhere; the count cache as
``benchmarks/arm_emulated.py`` writes it; the calibration of the committed ARM results."""

import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

import horq_keras  # noqa: F401  (Keras 2 before TensorFlow is used)
from horq_keras.tflite.arm_cost import (
    DEFAULT_MODEL_PATH,
    OVERHEAD,
    CostModel,
    calibration,
    load_counts,
    model_cost,
    operator_features,
    signature,
)
from horq_keras.tflite.graph import read_graph

RESULTS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "results"


@pytest.fixture(scope="module")
def flatbuffer():
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = tf.keras.layers.ReLU()(x)
    outputs = tf.keras.layers.Dense(2)(tf.keras.layers.Flatten()(x))
    return tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(inputs, outputs)).convert()


def test_counts_where_cached_the_model_elsewhere(flatbuffer):
    graph = read_graph(flatbuffer)
    conv = next(op for op in graph.operators if op.name == "CONV_2D")
    model = CostModel({"mac": [0.0, 2.0, 0.0, 0.0, 0.0, 100.0],
                       "elementwise": [0, 0, 0.5, 0.5, 1.0, 10.0]})
    counts = {signature(conv, graph): 12345}
    cost = model_cost(flatbuffer, counts=counts, cost_model=model, rate=1e9)
    others = sum(model.predict(op) for op in graph.operators if op is not conv)
    assert cost.instructions == pytest.approx(12345 + others)
    assert cost.measured_share == pytest.approx(12345 / (12345 + others))
    assert cost.ms == pytest.approx(1e3 * cost.instructions / 1e9)
    assert cost.float_macs == 8 * 8 * 4 * 3 * 3 * 3 + 8 * 8 * 4 * 2 and cost.binary_macs == 0
    assert cost.size_mb == len(flatbuffer) / 1e6
    assert model.predict(conv) == pytest.approx(2.0 * operator_features(conv)[1] + 100.0)
    with pytest.raises(ValueError, match="no instruction count or cost model for operator"):
        model_cost(flatbuffer, counts=counts)


def test_load_counts_reads_one_cache_entry(tmp_path):
    path = tmp_path / "counts.json"
    path.write_text(json.dumps({"k1": {OVERHEAD: 6293, "a": 10, "b": None}, "k2": {"a": 99}}))
    assert load_counts(path, "k1") == {"a": 10}  # the overhead and failed counts left out
    assert load_counts(path, "k3") == {} and load_counts(tmp_path / "none.json", "k1") == {}


def test_calibration_is_the_arm_benchmarks():
    committed = json.loads((RESULTS / "arm_emulated_resnet18.json").read_text())["calibration"]
    ours = calibration()
    assert ours["quicknet_ms"] == committed["quicknet_ms"]
    for key in ("instructions_per_second", "pixel1_instructions_per_second",
                "calibration_model_instructions", "birealnet_pixel1_ms"):
        assert ours[key] == pytest.approx(committed[key], rel=1e-12)


def test_the_package_ships_a_fitted_model():
    model = CostModel.load(DEFAULT_MODEL_PATH)
    assert {"mac", "elementwise"} <= set(model.coefficients) and model.cache_key
    assert model.error["new network"]["max_abs_relative_error"] is not None
    # ResNet-18's 56x56x64 3x3 binary convolution: binary MACs, float MACs, bytes read
    # (bitpacked) and written (float), output positions, constant
    features = np.array([56 * 56 * 64 * 9 * 64, 0, 56 * 56 * 8, 56 * 56 * 64 * 4, 56 * 56, 1.0])
    smaller = features * np.array([0.5, 1, 1, 1, 1, 1])
    assert model.predict_features("LceBconv2d", features) > model.predict_features(
        "LceBconv2d", smaller) > 0


def test_search_benchmark_sets_the_cost_model_against_full_counts(flatbuffer, tmp_path,
                                                                   monkeypatch):
    monkeypatch.syspath_prepend(str(RESULTS.parent))
    from search_mnist import cost_model_errors, cost_model_section

    path = tmp_path / "model.tflite"
    path.write_bytes(flatbuffer)
    predicted = model_cost(flatbuffer, cost_model=CostModel.load(DEFAULT_MODEL_PATH)).instructions
    counted = {"tflite": str(path), "measured_share": 1.0, "instructions": 2 * predicted,
               "label": "counted"}
    partly = {**counted, "measured_share": 0.5, "label": "partly counted"}
    errors = cost_model_errors([counted, partly, {"accuracy": None}])
    assert errors == [(counted, pytest.approx(predicted), pytest.approx(-0.5))]
    assert "mean |error| 50.0 %, max 50.0 %** over 1 candidates" in cost_model_section(errors)
    assert "No candidate was counted in full" in cost_model_section([])
