"""Operator names of converted models, and how binary a model is from its operators.

:data:`BINARY_CONV` is LCE's binary convolution, :data:`FLOAT_PRODUCT_OPS` TFLite's
operators that multiply matrices (float or int8 by their inputs' dtype). Two shares,
both in [0, 1]:

- ``binary_op_share``: LCE operators (``Lce*``: ``LceBconv2d``, ``LceQuantize``,
  ``LceDequantize``, ``LceBMaxPool2d``) among all operators of the graph;
- ``binary_conv_share``: binary convolutions (``LceBconv2d``) among the operators that
  multiply matrices (``LceBconv2d`` and :data:`FLOAT_PRODUCT_OPS`) — the part of the
  arithmetic that runs on bits.

The time share comes from an operator profile on the device
(:func:`horq_keras.bench.parse.parse_profile`).
"""

from horq_keras.tflite.check import TFLITE_IDENTIFIER, is_flatbuffer
from horq_keras.tflite.graph import op_counts

__all__ = ["BINARY_CONV", "FLOAT_PRODUCT_OPS", "MAC_OPS", "is_binary_op", "summarize_ops"]

#: LCE's binary convolution (custom code of the op).
BINARY_CONV = "LceBconv2d"
#: TFLite's operators that multiply-accumulate with weights (MACs are counted for these).
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
#: TFLite's operators that multiply matrices: :data:`MAC_OPS` and ``BATCH_MATMUL``.
FLOAT_PRODUCT_OPS = (*MAC_OPS, "BATCH_MATMUL")


def is_binary_op(name):
    """True for LCE's operators (custom codes starting with ``Lce``)."""
    return name.startswith("Lce")


def summarize_ops(flatbuffer):
    """Operator counts and binary shares (see the module docstring) of a flatbuffer.

    Raises:
        ValueError: when ``flatbuffer`` is not a TFLite model.
    """
    if not is_flatbuffer(flatbuffer):
        raise ValueError(
            f"not a TFLite flatbuffer (no {TFLITE_IDENTIFIER.decode()!r} file identifier)")
    try:
        counts = op_counts(flatbuffer)
    except Exception as error:  # the flatbuffer reader raises assorted errors on junk
        raise ValueError(f"not a TFLite flatbuffer ({type(error).__name__}: {error})") from None
    total = sum(counts.values())
    binary = sum(n for name, n in counts.items() if is_binary_op(name))
    products = counts[BINARY_CONV] + sum(counts[name] for name in FLOAT_PRODUCT_OPS)
    return {
        "op_counts": dict(sorted(counts.items())),
        "num_ops": total,
        "num_binary_ops": binary,
        "binary_op_share": binary / total if total else 0.0,
        "num_binary_convs": counts[BINARY_CONV],
        "num_product_ops": products,
        "binary_conv_share": counts[BINARY_CONV] / products if products else 0.0,
    }
