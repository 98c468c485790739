"""Make larq work without the user knowing about legacy Keras.

larq 0.14 is built on Keras 2 (``tf_keras``). TensorFlow 2.16 routes ``tf.keras`` to
Keras 3 unless ``TF_USE_LEGACY_KERAS=1`` is set before ``tf.keras`` is first used.
Importing :mod:`horq_keras` sets it when the user has not, and fails with a clear
message when ``tf.keras`` already resolved to Keras 3 (or the user forced it).
"""

import os

LEGACY_KERAS_VARIABLE = "TF_USE_LEGACY_KERAS"

_HOW_TO_FIX = (
    "Set the environment variable TF_USE_LEGACY_KERAS=1 before anything imports "
    "TensorFlow (for example `export TF_USE_LEGACY_KERAS=1` in the shell, or "
    "`import horq_keras` as the first import of your program), and make sure "
    "tf-keras==2.16.0 is installed (`pip install tf-keras==2.16.0`)."
)


def ensure_legacy_keras():
    """Select Keras 2 for ``tf.keras`` and verify that the selection took effect.

    Returns the ``tf.keras`` module. Raises ``ImportError`` naming what happened and
    what to do when ``tf.keras`` is Keras 3.
    """
    os.environ.setdefault(LEGACY_KERAS_VARIABLE, "1")
    import tensorflow as tf

    try:
        keras = tf.keras
        layer_module = keras.layers.Layer.__module__
    except ImportError as error:  # tf-keras missing while legacy Keras is requested
        raise ImportError(
            f"horq_keras needs Keras 2 (the tf-keras package) for larq, but it could "
            f"not be imported: {error}. {_HOW_TO_FIX}"
        ) from error
    if not layer_module.startswith("tf_keras."):
        version = getattr(keras, "__version__", "3")
        raise ImportError(
            f"horq_keras needs tf.keras to be Keras 2 (tf-keras), but tf.keras is "
            f"Keras {version} (module {keras.__name__}) "
            f"({LEGACY_KERAS_VARIABLE}={os.environ.get(LEGACY_KERAS_VARIABLE)!r}). "
            f"This happens when TensorFlow's Keras was used before horq_keras was "
            f"imported, or when {LEGACY_KERAS_VARIABLE} is set to a false value. "
            f"larq does not work on Keras 3. {_HOW_TO_FIX}"
        )
    return keras
