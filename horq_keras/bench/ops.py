"""How binary a converted model is, from its operators (:mod:`horq_keras.converters.graph`).

Two shares, both in [0, 1]:

- ``binary_op_share``: LCE operators (``Lce*``: ``LceBconv2d``, ``LceQuantize``,
  ``LceDequantize``, ``LceBMaxPool2d``) among all operators of the graph;
- ``binary_conv_share``: binary convolutions (``LceBconv2d``) among the operators that
  multiply matrices (``LceBconv2d`` and TFLite's convolution, fully connected and batch
  matmul operators) — the part of the arithmetic that runs on bits.

The time share comes from an operator profile on the device
(:func:`horq_keras.bench.parse.parse_profile`).
"""

from horq_keras.converters.graph import op_counts

__all__ = ["is_binary_op", "summarize_ops", "BINARY_CONV", "FLOAT_PRODUCT_OPS"]

BINARY_CONV = "LceBconv2d"
FLOAT_PRODUCT_OPS = (
    "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL",
)


def is_binary_op(name):
    """True for LCE's operators (custom codes starting with ``Lce``)."""
    return name.startswith("Lce")


def summarize_ops(flatbuffer):
    """Operator counts and binary shares (see the module docstring) of a flatbuffer.

    Raises:
        ValueError: when ``flatbuffer`` is not a TFLite model.
    """
    if bytes(flatbuffer[4:8]) != b"TFL3":  # the flatbuffer file identifier of TFLite models
        raise ValueError("not a TFLite flatbuffer (no 'TFL3' file identifier)")
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
