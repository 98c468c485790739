"""aarch64 cost of a converted model without the emulator: per-operator instruction counts
by operator signature, and a linear model of them fitted by least squares.

``benchmarks/arm_emulated.py`` counts the instructions of every operator of a converted
model on an emulated Cortex-A72 (qemu-user and a TCG plugin; LCE's binary operators by
the project's NEON stand-in) and caches them by :func:`signature`: the operator's name,
options and tensor shapes, everything that fixes its count. This module reads such a
cache and, for operators it does not hold, predicts the count with :class:`CostModel`:
per operator group (an operator name with enough measured samples, else its family:
multiply-accumulate operators or element-wise ones), a count linear in the operator's
binary and float multiply-accumulates (:func:`horq_keras.tflite.macs.operator_macs`),
the bytes it reads and writes (non-constant tensors), its output positions and a constant,
fitted by least
squares (``numpy.linalg.lstsq``) to the cached counts. The fitted coefficients ship as
``arm_cost_model.json`` beside this module (written by ``benchmarks/arm_cost_model.py``,
with the model's measured error against the emulator).

Milliseconds are estimates: instructions divided by :func:`calibration`'s rate, the
bare-binary ResNet-18 at 224 (the like for like of Bi-RealNet) fitted to LCE's published
Bi-RealNet latency on a Pixel 1 and scaled to a Raspberry Pi 4B by LCE's published
QuickNet latencies on both.

No TensorFlow here: flatbuffers are read with :mod:`horq_keras.tflite.graph`.
"""

import dataclasses
import hashlib
import json
import pathlib

import numpy as np

from horq_keras.tflite.graph import read_graph
from horq_keras.tflite.macs import count_macs, operator_macs

__all__ = ["BIREALNET_PIXEL1_MS", "CALIBRATION_MODEL_INSTRUCTIONS", "DEFAULT_MODEL_PATH",
           "FEATURES", "OVERHEAD", "QUICKNET_MS", "CostModel", "ModelCost", "calibration",
           "instructions_per_second", "load_counts", "model_cost", "operator_features",
           "signature"]

#: Published single-thread LCE latencies (LCE's README, github.com/larq/compute-engine):
#: Bi-RealNet (ResNet-18 with binary 3x3 convolutions, float 7x7 stem, float 1x1
#: downsampling shortcuts, float classifier) in 47.7 ms on a Pixel 1 (README of March 2020);
#: QuickNet in 45.0 ms on a Raspberry Pi 4B (Cortex-A72, 1.5 GHz) and 25.5 ms on a Pixel 1
#: (current README). See :func:`calibration`.
BIREALNET_PIXEL1_MS = 47.7
QUICKNET_MS = {"Raspberry Pi 4B": 45.0, "Pixel 1": 25.5}
#: Instructions of the bare-binary ResNet-18 at 224 counted by ``benchmarks/arm_emulated.py``
#: with the indirect NEON kernel (``benchmarks/results/arm_emulated_resnet18.json``,
#: ``calibration.calibration_model_instructions``): the default of :func:`calibration`.
CALIBRATION_MODEL_INSTRUCTIONS = 143_912_866
#: The cache entry of the interpreter's per-invocation overhead (not an operator).
OVERHEAD = "interpreter overhead"
#: The features of an operator, in the order of :class:`CostModel`'s coefficients.
FEATURES = ("binary_macs", "float_macs", "bytes_in", "bytes_out", "positions", "constant")
#: Operators counted as multiply-accumulate work (the others are element-wise).
MAC_FAMILY = ("LceBconv2d", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
              "TRANSPOSE_CONV")
DEFAULT_MODEL_PATH = pathlib.Path(__file__).with_name("arm_cost_model.json")
_BYTES = {"float32": 4, "int32": 4, "int8": 1, "uint8": 1, "int16": 2, "float16": 2,
          "int64": 8, "bool": 1}


def calibration(count=CALIBRATION_MODEL_INSTRUCTIONS):
    """Instructions per second that turn counts into estimated Raspberry Pi 4B milliseconds.

    ``count``: instructions of the bare-binary ResNet-18 at 224 (a binary 3x3
    ``LceBconv2d`` per block conv, float stem, float 1x1 downsampling shortcuts and
    classifier), the like for like of Bi-RealNet, which LCE runs in 47.7 ms on a Pixel 1.
    That gives a Pixel 1 rate; QuickNet's published Raspberry Pi 4B / Pixel 1 latencies
    (45.0 / 25.5 ms, same LCE kernels) scale it to the Pi. The fit absorbs the stand-in's
    extra binary instructions (LCE's kernels need fewer), so estimates of float work are on
    the low side and the whole calibration is a rough one: every millisecond it gives is an
    estimate.
    """
    pixel1 = count / (BIREALNET_PIXEL1_MS / 1e3)
    scale = QUICKNET_MS["Pixel 1"] / QUICKNET_MS["Raspberry Pi 4B"]
    return {"instructions_per_second": pixel1 * scale, "pixel1_instructions_per_second": pixel1,
            "calibration_model_instructions": count,
            "birealnet_pixel1_ms": BIREALNET_PIXEL1_MS, "quicknet_ms": QUICKNET_MS}


def instructions_per_second():
    """The Raspberry Pi 4B rate of :func:`calibration` with the committed count."""
    return calibration()["instructions_per_second"]


def signature(op, graph):
    """What determines an operator's instruction count: name, options, tensor shapes."""
    options = graph.model.subgraphs[0].operators[op.index].builtinOptions
    options = sorted(vars(options).items()) if options is not None else None
    tensors = [(t.shape, t.dtype, t.constant) if t is not None else None
               for t in op.inputs + op.outputs]
    text = repr((op.name, sorted(op.custom_options.items()), options, tensors))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _bytes(tensors):
    return sum(int(np.prod(t.shape, dtype=np.int64)) * _BYTES.get(t.dtype, 4)
               for t in tensors if t is not None and not t.constant)


def operator_features(op):
    """:data:`FEATURES` of one operator as a float vector. ``positions``: the elements of
    its first output but the channels (pixels of a convolution's output, rows of a fully
    connected one): what a kernel's per-output-position work (pointer set-up, reductions,
    stores) scales with, which dominates small layers."""
    kind, macs = operator_macs(op)
    output = op.outputs[0].shape if op.outputs and op.outputs[0] is not None else ()
    positions = int(np.prod(output[:-1], dtype=np.int64)) if len(output) > 1 else 1
    return np.array([macs if kind == "binary" else 0, macs if kind in ("float", "int8") else 0,
                     _bytes(op.inputs), _bytes(op.outputs), positions, 1.0], np.float64)


def family(name):
    """``"mac"`` for the multiply-accumulate operators, else ``"elementwise"``."""
    return "mac" if name in MAC_FAMILY else "elementwise"


def load_counts(path, key=None):
    """``{signature: count}`` of a count cache of ``benchmarks/arm_emulated.py`` (a JSON
    ``{cache key: {signature: count}}``): the entry ``key``, or ``{}`` when the file or the
    entry is missing. Failed counts (``null``) are left out."""
    try:
        cache = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    counts = cache.get(key, {}) if key is not None else {}
    return {sig: count for sig, count in counts.items()
            if sig != OVERHEAD and count is not None}


@dataclasses.dataclass
class CostModel:
    """Per group (an operator name, or a family: ``"mac"``, ``"elementwise"``), the
    least-squares coefficients of :data:`FEATURES`; predicted counts are never negative.

    ``cache_key``: the count cache entry (emulator, kernels) the model was fitted to.
    ``error``: what ``benchmarks/arm_cost_model.py`` measured of it (free-form, reported).
    """

    coefficients: dict
    cache_key: str = None
    error: dict = dataclasses.field(default_factory=dict)

    #: An operator name gets its own coefficients with at least this many distinct samples.
    MIN_SAMPLES = 8

    @classmethod
    def fit(cls, samples, cache_key=None):
        """Fit to ``samples``: ``[(operator name, feature vector, count), ...]``.

        Every family is fitted on all its samples; an operator name with at least
        :attr:`MIN_SAMPLES` samples also gets its own fit. Columns that are zero in every
        sample of a group get a zero coefficient (``lstsq``'s minimum-norm solution).
        """
        groups = {}
        for name, features, count in samples:
            groups.setdefault(family(name), []).append((features, count))
            groups.setdefault(name, []).append((features, count))
        coefficients = {}
        for group, rows in groups.items():
            if group not in ("mac", "elementwise") and len(rows) < cls.MIN_SAMPLES:
                continue
            x = np.array([features for features, _ in rows], np.float64)
            y = np.array([count for _, count in rows], np.float64)
            scale = np.maximum(np.abs(x).max(axis=0), 1.0)  # conditioning; undone below
            solution = np.linalg.lstsq(x / scale, y, rcond=None)[0] / scale
            coefficients[group] = [float(c) for c in solution]
        return cls(coefficients, cache_key)

    def predict_features(self, name, features):
        """Predicted instructions of an operator ``name`` with ``features`` (``None`` if
        no group fits it)."""
        coefficients = self.coefficients.get(name) or self.coefficients.get(family(name))
        if coefficients is None:
            return None
        return max(float(np.dot(coefficients, features)), 0.0)

    def predict(self, op):
        """Predicted instructions of one operator (``None`` if no group fits it)."""
        return self.predict_features(op.name, operator_features(op))

    def to_dict(self):
        return {"features": list(FEATURES), "cache_key": self.cache_key,
                "coefficients": self.coefficients, "error": self.error}

    @classmethod
    def from_dict(cls, data):
        if list(data.get("features", [])) != list(FEATURES):
            raise ValueError(f"cost model features {data.get('features')} are not "
                             f"{list(FEATURES)}: refit it (benchmarks/arm_cost_model.py)")
        return cls(data["coefficients"], data.get("cache_key"), data.get("error", {}))

    @classmethod
    def load(cls, path=DEFAULT_MODEL_PATH):
        return cls.from_dict(json.loads(pathlib.Path(path).read_text(encoding="utf-8")))


@dataclasses.dataclass
class ModelCost:
    """The aarch64 cost of one converted model.

    ``instructions``: per inference, counted where the cache holds the operator's
    signature and predicted elsewhere; ``measured_share``: the share of them that was
    counted; ``ms``: estimated Raspberry Pi 4B milliseconds (:func:`calibration`).
    """

    instructions: float
    measured_share: float
    ms: float
    size_mb: float
    binary_macs: int
    float_macs: int
    by_op: dict

    def to_dict(self):
        return dataclasses.asdict(self)


def model_cost(flatbuffer, *, counts=None, cost_model=None, rate=None):
    """:class:`ModelCost` of ``flatbuffer`` (bytes): each operator's count from ``counts``
    (``{signature: count}``) where it is there, else from ``cost_model``; an operator
    neither covers raises ``ValueError`` naming it."""
    graph = read_graph(flatbuffer)
    counts = counts or {}
    rate = rate or instructions_per_second()
    total = measured = 0.0
    by_op = {}
    for op in graph.operators:
        count = counts.get(signature(op, graph))
        if count is not None:
            measured += count
        else:
            count = cost_model.predict(op) if cost_model is not None else None
            if count is None:
                raise ValueError(f"no instruction count or cost model for operator {op.name} "
                                 f"(#{op.index})")
        total += count
        by_op[op.name] = by_op.get(op.name, 0.0) + count
    macs = count_macs(graph)
    return ModelCost(instructions=total, measured_share=measured / total if total else 1.0,
                     ms=1e3 * total / rate, size_mb=len(flatbuffer) / 1e6,
                     binary_macs=macs.binary, float_macs=macs.float + macs.int8,
                     by_op=dict(sorted(by_op.items(), key=lambda kv: -kv[1])))
