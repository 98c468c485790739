"""Shared test setup: legacy Keras first, deterministic seeds."""

# horq_keras first: it selects Keras 2 for tf.keras before TensorFlow is imported.
import horq_keras  # noqa: F401, I001
import numpy as np
import pytest
import tensorflow as tf


@pytest.fixture
def rng():
    """A fresh seeded NumPy generator per test (also seeds TensorFlow)."""
    tf.random.set_seed(1234)
    return np.random.default_rng(1234)
