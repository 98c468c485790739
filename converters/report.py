"""What a conversion did: ops, MACs, size, parity and the layers that stayed float.

:class:`ConversionReport` is printed as tables (``str(report)``) and saved as JSON
(:meth:`ConversionReport.save_json`, written atomically).
"""

import collections
import json
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

__all__ = ["ConversionReport", "LayerParity", "Parity", "build_report", "float_equivalent_bytes",
           "is_box_filter"]


@dataclass(frozen=True)
class LayerParity:
    """One Keras layer (or the group the converter fused into its output) run by the
    converted operators on exactly its Keras input (:mod:`.layerwise`).

    ``tensor`` is the converted graph's tensor of the layer's output, ``operators`` the
    operators that compute it from the previous mapped tensors, ``keras_layers`` the
    Keras layers they compute (this one last; more when the converter fused layers). ``tolerance`` =
    ``atol + rtol * scale`` (``scale``: ``max|Keras output|`` on the probe samples of
    :mod:`.layer_map`). ``elements_over`` counts the output values over it,
    ``elements_excused`` those of them that a quantizer input on its threshold up to
    rounding can move that far (:mod:`.layer_ties`), ``samples_over`` the samples with
    an unexcused one.
    ``keras_nonfinite`` / ``tflite_nonfinite`` count NaN and infinite values.
    """

    layer: str
    keras_layers: tuple
    tensor: str
    operators: tuple
    samples: int
    max_abs_diff: float
    mean_abs_diff: float
    worst_sample: int
    scale: float
    tolerance: float
    elements_over: int = 0
    elements_excused: int = 0
    samples_over: int = 0
    keras_nonfinite: int = 0
    tflite_nonfinite: int = 0

    @property
    def finite(self):
        return not (self.keras_nonfinite or self.tflite_nonfinite)

    @property
    def ok(self):
        return self.finite and self.elements_over == self.elements_excused

    def to_dict(self):
        return {"layer": self.layer, "keras_layers": list(self.keras_layers),
                "tensor": self.tensor, "operators": list(self.operators),
                "samples": self.samples, "max_abs_diff": self.max_abs_diff,
                "mean_abs_diff": self.mean_abs_diff, "worst_sample": self.worst_sample,
                "scale": self.scale, "tolerance": self.tolerance,
                "elements_over": self.elements_over, "elements_excused": self.elements_excused,
                "samples_over": self.samples_over, "keras_nonfinite": self.keras_nonfinite,
                "tflite_nonfinite": self.tflite_nonfinite, "ok": self.ok}


#: Worst layers printed by :meth:`Parity.layer_table`.
TABLE_LAYERS = 5


def _nonfinite_failure(side, count, where):
    return (f"{side} {where} {count} NaN or infinite value(s): a non-finite output cannot be "
            "compared (a NaN weight, a diverged training run, or NaN inputs)")


@dataclass
class Parity:
    """Converted model vs Keras on the same inputs.

    The verdict comes from ``layers`` (one :class:`LayerParity` per Keras layer output
    the converted graph holds, in graph order, each computed from exactly its Keras
    input and held to ``atol + rtol * max|Keras output|`` of that layer): the first
    layer that is not ``ok`` fails the check (:attr:`failure` names it). End to end,
    ``compared`` is ``"pre-softmax logits"`` when the model ends in a softmax, else
    ``"outputs"``; their largest and mean difference, ``reference_max_abs``
    (``max|Keras value|``) and both accuracies (with labels) are information, and only
    ``top1_agreement`` is gated (``min_top1``; None: not gated), coarsely: a sign within
    rounding of 0 may flip end to end and move a deep binary network's logits while
    every layer is right. A NaN or infinite value on either side fails.
    ``inputs`` says where the ``samples`` came from.
    """

    samples: int
    max_abs_diff: float
    mean_abs_diff: float
    reference_max_abs: float
    layers: list = field(default_factory=list)
    top1_agreement: float = None
    atol: float = 1e-5
    rtol: float = 1e-5
    min_top1: float = 0.9
    inputs: str = "given data"
    compared: str = "outputs"
    keras_nonfinite: int = 0
    tflite_nonfinite: int = 0
    keras_accuracy: float = None
    tflite_accuracy: float = None

    @property
    def failed_layer(self):
        """The first layer (in graph order) over its tolerance or not finite, or None."""
        return next((layer for layer in self.layers if not layer.ok), None)

    @property
    def failure(self):
        """Why the check fails (one sentence), or None when it passes."""
        for layer in self.layers:
            if layer.keras_nonfinite:
                return _nonfinite_failure("Keras layer", layer.keras_nonfinite,
                                          f"{layer.layer!r} outputs")
            if layer.tflite_nonfinite:
                return _nonfinite_failure(f"the converted operators of layer {layer.layer!r}",
                                          layer.tflite_nonfinite, "output")
        if self.keras_nonfinite:
            return _nonfinite_failure("the Keras model's", self.keras_nonfinite,
                                      f"{self.compared} hold")
        if self.tflite_nonfinite:
            return _nonfinite_failure("the converted model's", self.tflite_nonfinite,
                                      f"{self.compared} hold")
        if not self.layers:
            return ("no Keras layer output was found in the converted graph: the .tflite "
                    "computes something else than the model")
        layer = self.failed_layer
        if layer is not None:
            fused = ("" if len(layer.keras_layers) < 2 else
                     f"Keras layers {' > '.join(layer.keras_layers)}, ")
            return (f"layer {layer.layer!r} ({fused}converted operators "
                    f"{' > '.join(layer.operators)}, tensor {layer.tensor!r}) differs from "
                    f"Keras by up to {layer.max_abs_diff:.3g} on sample {layer.worst_sample}, "
                    f"over its tolerance {layer.tolerance:.3g} (= {self.atol:g} + {self.rtol:g} "
                    f"x its scale {layer.scale:.3g}) in "
                    f"{layer.elements_over - layer.elements_excused} value(s) of "
                    f"{layer.samples_over} sample(s)")
        if (self.min_top1 is not None and self.top1_agreement is not None
                and self.top1_agreement < self.min_top1):
            return (f"every layer is within its tolerance but the end-to-end top-1 agreement "
                    f"{self.top1_agreement:.1%} is under {self.min_top1:.0%}")
        return None

    @property
    def ok(self):
        return self.failure is None

    def to_dict(self):
        failed = self.failed_layer
        return {"samples": self.samples, "inputs": self.inputs, "ok": self.ok,
                "failure": self.failure, "failed_layer": None if failed is None else failed.layer,
                "atol": self.atol, "rtol": self.rtol,
                "end_to_end": {
                    "compared": self.compared, "max_abs_diff": self.max_abs_diff,
                    "mean_abs_diff": self.mean_abs_diff,
                    "reference_max_abs": self.reference_max_abs,
                    "top1_agreement": self.top1_agreement, "min_top1": self.min_top1,
                    "keras_accuracy": self.keras_accuracy,
                    "tflite_accuracy": self.tflite_accuracy,
                    "keras_nonfinite": self.keras_nonfinite,
                    "tflite_nonfinite": self.tflite_nonfinite},
                "layers": [layer.to_dict() for layer in self.layers]}

    def summary(self):
        over = sum(not layer.ok for layer in self.layers)
        excused = sum(layer.elements_excused for layer in self.layers)
        parts = [(f"{len(self.layers)} layers run on their Keras inputs, {over} over their "
                  f"tolerance ({self.atol:g} + {self.rtol:g} x each layer's max |Keras output|)")]
        if excused:
            parts[0] += (f"; {excused} value(s) excused (a quantizer input on its threshold up "
                         "to rounding, each within what crossing it changes)")
        parts.append(f"end to end, {self.compared}: max |diff| {self.max_abs_diff:.3g} (mean "
                     f"{self.mean_abs_diff:.3g}, max |Keras| {self.reference_max_abs:.3g})")
        if self.top1_agreement is not None:
            parts.append(f"top-1 agreement {self.top1_agreement:.1%}")
        if self.keras_accuracy is not None:
            parts.append(f"accuracy Keras {self.keras_accuracy:.2%}, TFLite "
                         f"{self.tflite_accuracy:.2%}")
        verdict = "OK" if self.ok else f"FAILED: {self.failure}"
        return f"{', '.join(parts)} on {self.samples} samples ({self.inputs}): {verdict}"

    def layer_table(self, count=TABLE_LAYERS):
        """The ``count`` layers nearest to (or furthest over) their tolerance, as a table."""
        worst = sorted(self.layers, reverse=True, key=lambda layer: (
            not layer.finite, layer.max_abs_diff / layer.tolerance if layer.tolerance else 0.0))
        rows = [["layer", "converted operators", "max |diff|", "tolerance", "values over",
                 "worst sample", "status"]]
        for layer in worst[:count]:
            operators = " > ".join(layer.operators)
            rows.append([layer.layer, operators if len(operators) <= 40 else operators[:37] + "...",
                         f"{layer.max_abs_diff:.3g}", f"{layer.tolerance:.3g}",
                         layer.elements_over - layer.elements_excused, layer.worst_sample,
                         "ok" if layer.ok else "FAILED"])
        return AsciiTable(rows, f"Worst layers (of {len(self.layers)})").table

    def __str__(self):
        return self.summary() + ("\n" + self.layer_table() if self.layers else "")


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
        if self.parity is not None and self.parity.layers:
            sections.append(self.parity.layer_table())
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
