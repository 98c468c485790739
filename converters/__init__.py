"""LCE conversion of horq_keras / larq models (installed as ``horq_keras.converters``).

- :func:`convert` — Keras model to .tflite (atomic write) with a
  :class:`ConversionReport`: ops, binary/float MACs, size, parity, float fallbacks.
- :func:`verify` — parity of an existing (Keras model, .tflite) pair.
- :func:`rewrite_bit_planes` — k-bit activations as binary bit planes (:mod:`.kbit`).
- :func:`prepare_int8` — quantization-aware training of the float first/last layers.
- :func:`fold_horq_batch_norms` — a batch norm after a HORQ conv folded into it
  (:mod:`.batchnorm_fold`; ``convert`` does it).
- :func:`deployable` — the Keras model ``convert`` hands to LCE (bit planes, folds).

Reading, checking and running flatbuffers, MAC counts and atomic writes are Keras-free
and live one layer below, in :mod:`horq_keras.tflite` (``horq_keras.converters.graph``,
``.macs`` and ``.io`` still import from there).
"""

import importlib

__all__ = [
    "TARGETS",
    "BitPlaneConv2D",
    "ConversionError",
    "ConversionReport",
    "Parity",
    "convert",
    "deployable",
    "fold_horq_batch_norms",
    "is_int8_prepared",
    "prepare_int8",
    "rewrite_bit_planes",
    "verify",
]

#: LCE's target platforms.
TARGETS = ("arm", "xcore")

#: Where each public name is defined; loaded on first use (TensorFlow is imported then,
#: not when the CLI imports ``horq_keras.converters.cli``).
_HOMES = {
    "BitPlaneConv2D": "kbit",
    "ConversionError": "conversion",
    "ConversionReport": "report",
    "Parity": "report",
    "convert": "conversion",
    "deployable": "conversion",
    "fold_horq_batch_norms": "batchnorm_fold",
    "is_int8_prepared": "int8",
    "prepare_int8": "int8",
    "rewrite_bit_planes": "kbit",
    "verify": "verification",
}


def __getattr__(name):
    if name in _HOMES:
        return getattr(importlib.import_module(f"horq_keras.converters.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'horq_keras.converters' has no attribute {name!r}")
