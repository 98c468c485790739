"""What a conversion did: ops, MACs, size, parity and the layers that stayed float.

:class:`ConversionReport` is printed as tables (``str(report)``) and saved as JSON
(:meth:`ConversionReport.save_json`, written atomically).
"""

import collections
import json
import math
from dataclasses import dataclass, field

import numpy as np
from terminaltables import AsciiTable

from horq_keras.files import atomic_write_text
from horq_keras.tflite.macs import (
    BINARY_CONV,
    MacCount,
    bconv_input_channels,
    count_macs,
    operator_macs,
)

__all__ = ["FLOOR_FACTOR", "TOLERANCES", "ConversionReport", "Parity", "build_report", "float_equivalent_bytes",
           "is_box_filter", "misses_allowed"]

#: Default ``(atol, rtol)`` of the parity check: float models, int8 models.
TOLERANCES = {False: (1e-4, 1e-3), True: (1e-2, 0.1)}
#: The parity tolerance grows by this many rounding floors (:class:`Parity`).
FLOOR_FACTOR = 2


@dataclass
class Parity:
    """Converted model vs Keras on the same inputs.

    ``compared`` is ``"pre-softmax logits"`` when the model ends in a softmax, else
    ``"outputs"``. A sample agrees when all its values are within ``tolerance`` =
    ``atol + rtol * max|Keras value|`` (relative to the logits' scale). ``ok`` when at
    least ``min_within`` of the samples agree and, when ``min_top1`` is set and the first
    output is a vector per sample, at least that share has the same arg-max
    (``top1_agreement``). A binary network may flip a sign that sits at 0 up to float
    rounding (LCE folds batch norm into its kernels and sums in another order), which
    moves a sample's logits while the model is right: hence a share, not every sample;
    and a share under 100 % always tolerates one such sample (:func:`misses_allowed`),
    else 99 % of 32 samples would demand all 32. In a wide binary network such flips are
    common (each of its many sign inputs can sit within rounding of 0); then
    ``rounding_floor`` is the largest difference float rounding alone makes in the
    converted model (the same flatbuffer run with TFLite's built-in float kernels instead
    of XNNPACK's, which sum in other orders), the tolerance grows by
    :data:`FLOOR_FACTOR` floors, and ``strict_within`` keeps the share within the strict
    tolerance. With k-bit activations (bit planes on LCE), a sample whose k-bit input
    lies on a rounding threshold up to float rounding (``converters.ties``) may take
    adjacent levels in the two models; then ``tie_samples`` counts such samples and the
    ``tie_excused`` of them over the tolerance, but within it plus :data:`FLOOR_FACTOR`
    times what crossing their ties moves the Keras model, count as within. ``inputs`` says
    where the ``samples`` came from; with labels, ``keras_accuracy`` and
    ``tflite_accuracy``.
    """

    samples: int
    max_abs_diff: float
    mean_abs_diff: float
    reference_max_abs: float
    samples_within: float = 1.0
    top1_agreement: float = None
    atol: float = TOLERANCES[False][0]
    rtol: float = TOLERANCES[False][1]
    min_within: float = 0.99
    min_top1: float = 0.99
    inputs: str = "given data"
    compared: str = "outputs"
    keras_accuracy: float = None
    tflite_accuracy: float = None
    rounding_floor: float = None
    strict_within: float = None
    tie_samples: int = None
    tie_excused: int = None

    @property
    def strict_tolerance(self):
        return self.atol + self.rtol * self.reference_max_abs

    @property
    def tolerance(self):
        return self.strict_tolerance + FLOOR_FACTOR * (self.rounding_floor or 0.0)

    @property
    def ok(self):
        def met(share, minimum):
            return round((1 - share) * self.samples) <= misses_allowed(minimum, self.samples)

        top1_ok = (self.min_top1 is None or self.top1_agreement is None
                   or met(self.top1_agreement, self.min_top1))
        return bool(met(self.samples_within, self.min_within) and top1_ok)

    def to_dict(self):
        return {"samples": self.samples, "inputs": self.inputs, "compared": self.compared,
                "max_abs_diff": self.max_abs_diff, "mean_abs_diff": self.mean_abs_diff,
                "reference_max_abs": self.reference_max_abs, "tolerance": self.tolerance,
                "samples_within": self.samples_within, "min_within": self.min_within,
                "top1_agreement": self.top1_agreement, "min_top1": self.min_top1,
                "keras_accuracy": self.keras_accuracy, "tflite_accuracy": self.tflite_accuracy,
                "atol": self.atol, "rtol": self.rtol, "strict_tolerance": self.strict_tolerance,
                "rounding_floor": self.rounding_floor, "strict_within": self.strict_within,
                "tie_samples": self.tie_samples, "tie_excused": self.tie_excused,
                "ok": self.ok}

    def summary(self):
        parts = [f"{self.compared}: {self.samples_within:.1%} of samples within "
                 f"{self.tolerance:.3g} (max |diff| {self.max_abs_diff:.3g}, mean "
                 f"{self.mean_abs_diff:.3g}, max |Keras| {self.reference_max_abs:.3g})"]
        if self.rounding_floor is not None:
            parts[0] += (f" = strict {self.strict_tolerance:.3g} ({self.strict_within:.1%} "
                         f"within) + {FLOOR_FACTOR} x rounding floor {self.rounding_floor:.3g} "
                         "(the .tflite without XNNPACK differs from itself by up to that)")
        if self.tie_samples is not None:
            parts[0] += (f"; {self.tie_excused} sample(s) over it excused: {self.tie_samples} "
                         "have a k-bit activation on a rounding threshold up to float "
                         "rounding, which either model may round either way, and each "
                         f"excused one is within it plus {FLOOR_FACTOR} x what crossing its "
                         "ties does in Keras")
        if self.top1_agreement is not None:
            parts.append(f"top-1 agreement {self.top1_agreement:.1%}")
        if self.keras_accuracy is not None:
            parts.append(f"accuracy Keras {self.keras_accuracy:.2%}, TFLite "
                         f"{self.tflite_accuracy:.2%}")
        needs = [f"{self.min_within:.0%} of samples within (all but "
                 f"{misses_allowed(self.min_within, self.samples)} of {self.samples})"]
        if self.min_top1 is not None and self.top1_agreement is not None:
            needs.append(f"top-1 agreement >= {self.min_top1:.0%}")
        verdict = "OK" if self.ok else f"FAILED (needs {' and '.join(needs)})"
        return f"{', '.join(parts)} on {self.samples} samples ({self.inputs}): {verdict}"


def misses_allowed(minimum, samples):
    """How many of ``samples`` may miss when a share ``minimum`` must pass: the
    ``(1 - minimum)`` share, rounded down, and at least one unless ``minimum`` is 100 %."""
    allowed = math.floor((1 - minimum) * samples + 1e-9)
    return allowed if minimum >= 1 else max(1, allowed)


def float_equivalent_bytes(graph, size_bytes):
    """Size of the flatbuffer with its binary and int8 weights stored as float32.

    Each stored ``LceBconv2d`` kernel (bitpacked, 1 bit per weight; a kernel shared
    by several ops counts once) and each int8 conv / fully-connected weight tensor
    is replaced by 4 bytes per weight.
    """
    extra, seen = 0, set()
    for op in graph.operators:
        kind, _ = operator_macs(op)
        if kind not in ("binary", "int8"):
            continue
        weights = op.inputs[1]  # the filter of every MAC op, TRANSPOSE_CONV included
        if not weights.constant or weights.buffer in seen:
            continue
        seen.add(weights.buffer)
        if kind == "binary":
            out, k_h, k_w, _ = weights.shape
            count = out * k_h * k_w * bconv_input_channels(op)
        else:
            count = int(np.prod(weights.shape, dtype=np.int64))
        extra += 4 * count - graph.buffer_sizes[weights.buffer]
    return size_bytes + extra


def is_box_filter(op, graph):
    """A HORQ pixel-form beta-map mean: a 1-channel float conv with a constant 1/(k_h k_w)."""
    if op.name != "CONV_2D" or not op.inputs[1].constant or op.inputs[1].dtype != "float32":
        return False
    out, k_h, k_w, channels = op.inputs[1].shape
    if (out, channels) != (1, 1):
        return False
    data = bytes(bytearray(graph.model.buffers[op.inputs[1].buffer].data))
    return bool(np.allclose(np.frombuffer(data, "<f4"), 1.0 / (k_h * k_w)))


def _kind_counts(graph):
    counts = {"float_conv_ops": 0, "float_fc_ops": 0, "int8_conv_ops": 0, "int8_fc_ops": 0,
              "box_filter_ops": 0}
    for op in graph.operators:
        kind, _ = operator_macs(op)
        if kind in ("float", "int8"):
            family = "fc" if op.name == "FULLY_CONNECTED" else "conv"
            counts[f"{kind}_{family}_ops"] += 1
        counts["box_filter_ops"] += is_box_filter(op, graph)
    return counts


@dataclass
class ConversionReport:
    """Everything :func:`horq_keras.converters.convert` did (see the module docstring)."""

    model_name: str
    output_path: str
    target: str
    int8: bool
    op_counts: dict
    float_conv_ops: int
    float_fc_ops: int
    int8_conv_ops: int
    int8_fc_ops: int
    box_filter_ops: int  # of the float conv ops: HORQ beta-map means (1 channel)
    macs: MacCount
    size_bytes: int
    float_equivalent_bytes: int
    layers: list  # of LayerLowering, every layer meant to be binary
    unattributed_bconvs: int = 0
    bit_plane_layers: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    parity: Parity = None

    @property
    def bconv_ops(self):
        return self.op_counts.get(BINARY_CONV, 0)

    @property
    def float_fallbacks(self):
        """Layers meant to be binary that stayed float, each with its reason."""
        return [layer for layer in self.layers if not layer.lowered]

    def to_dict(self):
        return {
            "model": self.model_name,
            "output_path": self.output_path,
            "target": self.target,
            "int8": self.int8,
            "op_counts": dict(sorted(self.op_counts.items())),
            "bconv_ops": self.bconv_ops,
            "float_conv_ops": self.float_conv_ops,
            "float_fc_ops": self.float_fc_ops,
            "int8_conv_ops": self.int8_conv_ops,
            "int8_fc_ops": self.int8_fc_ops,
            "box_filter_ops": self.box_filter_ops,
            "macs": {"binary": self.macs.binary, "float": self.macs.float,
                     "int8": self.macs.int8, "binary_fraction": self.macs.binary_fraction},
            "size_bytes": self.size_bytes,
            "float_equivalent_bytes": self.float_equivalent_bytes,
            "binary_layers": [layer.to_dict() for layer in self.layers],
            "float_fallbacks": [{"name": layer.name, "kind": layer.kind, "reason": layer.reason}
                                for layer in self.float_fallbacks],
            "unattributed_bconvs": self.unattributed_bconvs,
            "bit_plane_layers": list(self.bit_plane_layers),
            "notes": list(self.notes),
            "parity": None if self.parity is None else self.parity.to_dict(),
        }

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save_json(self, path):
        """Write :meth:`to_json` to ``path`` atomically."""
        return atomic_write_text(path, self.to_json())

    def __str__(self):
        ratio = self.float_equivalent_bytes / self.size_bytes if self.size_bytes else 0.0
        summary = [
            ["LceBconv2d ops", self.bconv_ops],
            ["float conv / FC ops", (f"{self.float_conv_ops} / {self.float_fc_ops}" + (
                f" ({self.box_filter_ops} of the convs: 1-channel beta-map means)"
                if self.box_filter_ops else ""))],
            ["int8 conv / FC ops", f"{self.int8_conv_ops} / {self.int8_fc_ops}"],
            ["binary MACs", f"{self.macs.binary:,}"],
            ["float MACs", f"{self.macs.float:,}"],
            ["int8 MACs", f"{self.macs.int8:,}"],
            ["binary share of MACs", f"{self.macs.binary_fraction:.1%}"],
            ["flatbuffer size", f"{self.size_bytes:,} B"],
            ["float-equivalent size", f"{self.float_equivalent_bytes:,} B ({ratio:.1f}x)"],
            ["parity vs Keras", "not checked" if self.parity is None else self.parity.summary()],
        ]
        title = (f"Conversion of {self.model_name} -> {self.output_path} "
                 f"(target {self.target}{', int8' if self.int8 else ''})")
        sections = [
            title,
            AsciiTable([["", ""]] + summary, "Summary").table,
            AsciiTable([["op", "count"]] + sorted(map(list, self.op_counts.items())),
                       "Ops").table,
        ]
        if self.layers:
            rows = [["layer", "type", "LceBconv2d", "per call", "kernels stored", "status"]]
            rows += [[layer.name, layer.kind, layer.bconvs, layer.expected_bconvs,
                      layer.kernel_buffers, "binary" if layer.lowered else "FLOAT"]
                     for layer in self.layers]
            sections.append(AsciiTable(rows, "Layers meant to be binary").table)
        if self.float_fallbacks:
            rows = [["layer", "type", "reason"]]
            rows += [[layer.name, layer.kind, layer.reason] for layer in self.float_fallbacks]
            sections.append(AsciiTable(rows, "Stayed float").table)
        notes = list(self.notes)
        if self.bit_plane_layers:
            notes.append("k-bit activations as bit planes: " + ", ".join(self.bit_plane_layers))
        sections += [f"note: {note}" for note in notes]
        return "\n".join(sections)


def build_report(*, model, flatbuffer, graph, lowerings, unattributed, target, int8,
                 output_path, bit_plane_layers=(), notes=(), parity=None):
    """Assemble the :class:`ConversionReport` of a converted ``graph``."""
    notes = list(notes)
    for layer in lowerings:
        if layer.lowered and layer.bconvs % layer.expected_bconvs:
            notes.append(f"{layer.name}: {layer.bconvs} LceBconv2d ops, expected a multiple "
                         f"of {layer.expected_bconvs}")
        if layer.kernel_buffers > 1:
            notes.append(f"{layer.name}: its binary kernel is stored {layer.kernel_buffers} "
                         f"times")
    if unattributed:
        notes.append(f"{unattributed} LceBconv2d op(s) store a kernel that matches no layer")
    return ConversionReport(
        model_name=model.name,
        output_path=None if output_path is None else str(output_path),
        target=target,
        int8=int8,
        op_counts=dict(collections.Counter(op.name for op in graph.operators)),
        macs=count_macs(graph),
        size_bytes=len(flatbuffer),
        float_equivalent_bytes=float_equivalent_bytes(graph, len(flatbuffer)),
        layers=list(lowerings),
        unattributed_bconvs=unattributed,
        bit_plane_layers=list(bit_plane_layers),
        notes=notes,
        parity=parity,
        **_kind_counts(graph),
    )
