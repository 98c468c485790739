"""horq-keras: High-Order Residual Quantization and Group-Net for Keras and Larq.

Importing this package selects Keras 2 for ``tf.keras`` (larq needs it); see
:mod:`horq_keras._keras_compat`. It also registers every custom Keras object of the
package (layers, quantizers, Group-Net's) under ``horq_keras>Name`` and ``Name``
(:mod:`horq_keras.serialization`), so saved models load after ``import horq_keras``.
"""

from horq_keras._keras_compat import ensure_legacy_keras

ensure_legacy_keras()

from horq_keras import groupnet, layers, quantizers  # noqa: E402
from horq_keras.models.summary import summary  # noqa: E402

__version__ = "0.1.0"

__all__ = ["groupnet", "layers", "quantizers", "summary", "__version__"]
