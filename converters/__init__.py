"""LCE conversion of horq_keras / larq models (installed as ``horq_keras.converters``)."""
