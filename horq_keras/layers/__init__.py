"""Keras layers of horq-keras (larq layer classes, registered as ``horq_keras>...``)."""

from horq_keras.layers.bitplane import BitPlaneConv2D
from horq_keras.layers.horq import BETA_FORMS, HORQConv2D, HORQDense

__all__ = ["BETA_FORMS", "BitPlaneConv2D", "HORQConv2D", "HORQDense"]
