"""A recipe's optimizer and learning-rate schedule, built for a known number of steps."""

import larq as lq
import tensorflow as tf

__all__ = ["make_optimizer", "make_schedule"]


def make_schedule(recipe, learning_rate, epochs, steps_per_epoch):
    """``cosine`` (to 0 over ``epochs``), ``step`` (/10 at each milestone) or constant."""
    if recipe.schedule == "cosine":
        return tf.keras.optimizers.schedules.CosineDecay(learning_rate,
                                                         epochs * steps_per_epoch)
    if recipe.schedule == "step":
        boundaries = [milestone * steps_per_epoch for milestone in recipe.lr_milestones]
        values = [learning_rate * 0.1**i for i in range(len(boundaries) + 1)]
        return tf.keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    return learning_rate


def make_optimizer(recipe, learning_rate, epochs, steps_per_epoch):
    """The optimizer of ``recipe`` with its schedule.

    ``bop``: larq's ``CaseOptimizer`` gives every binary weight (a variable whose
    quantizer has precision 1) to ``Bop`` and the rest to Adam; larq's optimizers
    subclass Keras' *legacy* ``OptimizerV2``, so Adam is the legacy one here.
    """
    schedule = make_schedule(recipe, learning_rate, epochs, steps_per_epoch)
    decay = recipe.weight_decay or None
    if recipe.optimizer == "sgd":
        return tf.keras.optimizers.SGD(schedule, momentum=recipe.momentum,
                                       nesterov=recipe.nesterov, weight_decay=decay)
    if recipe.optimizer == "bop":
        return lq.optimizers.CaseOptimizer(
            (lq.optimizers.Bop.is_binary_variable,
             lq.optimizers.Bop(threshold=recipe.bop_threshold, gamma=recipe.bop_gamma)),
            default_optimizer=tf.keras.optimizers.legacy.Adam(schedule),
        )
    return tf.keras.optimizers.Adam(schedule, weight_decay=decay)
