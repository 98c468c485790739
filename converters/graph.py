"""Moved to :mod:`horq_keras.tflite.graph` (Keras-free); this import path is kept."""

from horq_keras.tflite.graph import *  # noqa: F403
from horq_keras.tflite.graph import __all__  # noqa: F401
