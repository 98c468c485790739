"""Helpers shared by the tests (beside :mod:`numpy_horq`, the NumPy reference)."""

import tensorflow as tf


def randomize_batch_norms(model, rng, *, spread=0.2, mean_spread=None, beta_range=None,
                          variance_range=(0.5, 2.0)):
    """Give every ``BatchNormalization`` of ``model`` trained-looking parameters.

    Fresh batch norms are identities that the converter folds away; parity and
    lowering tests need them to compute something. Per layer, in this order:
    ``gamma ~ U(0.5, 1.5)``, ``beta ~ N(0, spread)`` (or ``U(*beta_range)``),
    ``moving_mean ~ N(0, mean_spread or spread)``, ``moving_variance ~ U(*variance_range)``.
    """
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            beta = rng.normal(0, spread, n) if beta_range is None else rng.uniform(*beta_range, n)
            layer.set_weights([rng.uniform(0.5, 1.5, n), beta,
                               rng.normal(0, spread if mean_spread is None else mean_spread, n),
                               rng.uniform(*variance_range, n)])
