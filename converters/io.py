"""Moved to :mod:`horq_keras.tflite.files` (Keras-free); this import path is kept."""

from horq_keras.tflite.files import *  # noqa: F403
from horq_keras.tflite.files import __all__  # noqa: F401
