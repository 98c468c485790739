"""Make larq work without the user knowing about legacy Keras.

larq 0.14 is built on Keras 2 (``tf_keras``). TensorFlow 2.16 routes ``tf.keras`` to
Keras 3 unless ``TF_USE_LEGACY_KERAS=1`` is set before ``tf.keras`` is first used.
Importing :mod:`horq_keras` sets it when the user has not (:func:`select_legacy_keras`,
without importing TensorFlow), and fails with a clear message (:func:`ensure_legacy_keras`)
when TensorFlow was imported first and ``tf.keras`` is Keras 3, or the user forced it.
"""

import importlib
import os

LEGACY_KERAS_VARIABLE = "TF_USE_LEGACY_KERAS"

_HOW_TO_FIX = (
    "Set the environment variable TF_USE_LEGACY_KERAS=1 before anything imports "
    "TensorFlow (for example `export TF_USE_LEGACY_KERAS=1` in the shell, or "
    "`import horq_keras` as the first import of your program), and make sure "
    "tf-keras==2.16.0 is installed (`pip install tf-keras==2.16.0`)."
)


#: Values of the variable that TensorFlow reads as true.
_TRUE_VALUES = ("true", "True", "1")


def select_legacy_keras():
    """Set ``TF_USE_LEGACY_KERAS=1`` unless the user set it; True when it selects Keras 2.

    Cheap (TensorFlow is not imported): when TensorFlow is imported later, it routes
    ``tf.keras`` to Keras 2.
    """
    return os.environ.setdefault(LEGACY_KERAS_VARIABLE, "1") in _TRUE_VALUES


def ensure_legacy_keras():
    """Select Keras 2 for ``tf.keras`` and verify that the selection took effect.

    Both spellings larq uses must be Keras 2: the ``tf.keras`` attribute (resolved on
    first use) and the ``tensorflow.keras`` import path (fixed when TensorFlow is
    imported). Returns the ``tf.keras`` module. Raises ``ImportError`` naming what
    happened and what to do when either is Keras 3.
    """
    os.environ.setdefault(LEGACY_KERAS_VARIABLE, "1")
    import tensorflow as tf

    try:
        modules = {
            "tf.keras": tf.keras,
            "tensorflow.keras": importlib.import_module("tensorflow.keras"),
        }
        keras3 = {
            spelling: module
            for spelling, module in modules.items()
            if not module.layers.Layer.__module__.startswith("tf_keras.")
        }
    except ImportError as error:  # tf-keras missing while legacy Keras is requested
        raise ImportError(
            f"horq_keras needs Keras 2 (the tf-keras package) for larq, but it could "
            f"not be imported: {error}. {_HOW_TO_FIX}"
        ) from error
    if keras3:
        found = ", ".join(f"{spelling} is {module.__name__}" for spelling, module in keras3.items())
        raise ImportError(
            f"horq_keras needs Keras 2 (tf-keras), but Keras 3 is in use ({found}; "
            f"{LEGACY_KERAS_VARIABLE}={os.environ.get(LEGACY_KERAS_VARIABLE)!r}). "
            f"This happens when TensorFlow was imported before horq_keras without "
            f"{LEGACY_KERAS_VARIABLE}=1, or when {LEGACY_KERAS_VARIABLE} is set to a "
            f"false value. larq does not work on Keras 3. {_HOW_TO_FIX}"
        )
    return modules["tf.keras"]
