"""LCE conversion of horq_keras / larq models (installed as ``horq_keras.converters``).

- :func:`convert` — Keras model to .tflite (atomic write) with a
  :class:`ConversionReport`: ops, binary/float MACs, size, parity, float fallbacks.
- :func:`verify` — parity of an existing (Keras model, .tflite) pair.
- :func:`rewrite_bit_planes` — k-bit activations as binary bit planes (:mod:`.kbit`).
- :func:`prepare_int8` — quantization-aware training of the float first/last layers.
- :mod:`.graph`, :mod:`.macs` — reading a flatbuffer; :mod:`.io` — atomic writes.
"""

from horq_keras.converters.conversion import TARGETS, convert
from horq_keras.converters.int8 import is_int8_prepared, prepare_int8
from horq_keras.converters.kbit import BitPlaneConv2D, rewrite_bit_planes
from horq_keras.converters.report import ConversionReport, Parity
from horq_keras.converters.verification import verify

__all__ = [
    "TARGETS",
    "BitPlaneConv2D",
    "ConversionReport",
    "Parity",
    "convert",
    "is_int8_prepared",
    "prepare_int8",
    "rewrite_bit_planes",
    "verify",
]
