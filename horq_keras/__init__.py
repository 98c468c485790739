"""horq-keras: High-Order Residual Quantization and Group-Net for Keras and Larq.

Importing this package is cheap: it selects Keras 2 for ``tf.keras`` (larq needs it; see
:mod:`horq_keras._keras_compat`) without importing TensorFlow, unless TensorFlow is
already imported or ``TF_USE_LEGACY_KERAS`` is set to a false value, in which case it
checks at once that ``tf.keras`` is Keras 2 and raises a clear ``ImportError`` if not.

The subpackages load on first use: ``horq_keras.layers``, ``horq_keras.quantizers``,
``horq_keras.summary`` work after ``import horq_keras``. Every Keras object of the
package (layers, quantizers, Group-Net's) is registered as ``horq_keras>Name`` and as
larq's plain ``Name`` once Keras is imported (:mod:`horq_keras.serialization`), so that
saved models load after ``import horq_keras`` alone, without ``custom_objects``.

Package layers, each importing only the ones below it (``tests/test_import_layers.py``;
each subfolder holds one layer):

0. base — :mod:`._checks`, :mod:`.argtypes`, :mod:`.exit_status`, :mod:`.files` (atomic
   writes, the output-path rule), :mod:`._keras_compat`;
1. core — :mod:`.quantizers`, :mod:`.layers`, :mod:`.groupnet`, :mod:`.models`,
   :mod:`.datasets` (Keras, larq);
2. :mod:`.tflite` — Keras-free flatbuffer reading, op and MAC counts, the one LCE
   interpreter runner;
3. :mod:`.converters` — conversion, lowering checks, k-bit, int8, verification;
4. applications — :mod:`.training`, :mod:`.bench`, and :mod:`.cli`, the ``horq-keras``
   entry point.

HORQ's equations, each with the function that implements it: :mod:`horq_keras.layers`.
"""

import importlib
import sys

from horq_keras._keras_compat import ensure_legacy_keras, select_legacy_keras
from horq_keras.serialization import install

if not select_legacy_keras() or "tensorflow" in sys.modules:
    ensure_legacy_keras()  # TensorFlow came first or Keras 2 is switched off: check now
install()

__version__ = "0.1.0"

__all__ = ["layers", "quantizers", "summary", "__version__"]

_LAZY_SUBMODULES = ("layers", "quantizers", "models", "groupnet", "datasets")


def __getattr__(name):
    """Load ``horq_keras.layers``, ``.quantizers``, ... and ``summary`` on first use."""
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"horq_keras.{name}")
    if name == "summary":
        from horq_keras.models.summary import summary

        return summary
    raise AttributeError(f"module 'horq_keras' has no attribute {name!r}")
