"""Registration of the package's custom Keras objects under both names Keras files use.

Keras 2 looks a class up by its registered name ``"horq_keras>Name"`` (what
``register_keras_serializable`` writes into ``.keras`` / SavedModel / ``.h5`` configs);
larq resolves quantizers given as a config dict by the plain ``"Name"`` in Keras'
global custom objects. :func:`register` does both, so every saved model that uses
objects of this package loads after ``import horq_keras`` alone.
"""

import larq as lq
import tensorflow as tf

__all__ = ["PACKAGE", "register"]

#: Keras package name of every registered object.
PACKAGE = "horq_keras"


def register(cls):
    """Class decorator: register ``cls`` as ``horq_keras>Name`` and as ``Name``."""
    return lq.utils.register_keras_custom_object(
        tf.keras.utils.register_keras_serializable(package=PACKAGE)(cls)
    )
