"""Moved to :mod:`horq_keras.tflite.macs` (Keras-free); this import path is kept."""

from horq_keras.tflite.macs import *  # noqa: F403
from horq_keras.tflite.macs import __all__  # noqa: F401
