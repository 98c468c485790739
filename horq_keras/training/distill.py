"""Knowledge distillation from a float teacher (Hinton et al. 2015; larq-zoo's QuickNet).

The student is trained on ``(1 - w) * CE(y, p_s) + w * T^2 * KL(q_t || q_s)`` with
``q = softmax(logits / T)``. The models of this package end in a softmax, so the
logits are recovered as ``log p`` (equal to the logits up to a per-sample constant,
which a softmax ignores). :func:`distillation_model` wraps student and frozen teacher
into one Keras model whose output is both probability vectors side by side, so that
``Model.fit``, its callbacks and ``tf.distribute`` work unchanged; only the student's
weights train.
"""

import tensorflow as tf

from horq_keras.serialization import register

__all__ = ["DistillationLoss", "StudentAccuracy", "distillation_model"]

_EPSILON = 1e-7


def distillation_model(student, teacher):
    """``x -> concat[student(x), teacher(x)]`` with the teacher frozen.

    The teacher enters as ``"teacher"`` (a model of its layers under that name), so a
    teacher of the student's own architecture (and name) does not clash with it.
    """
    teacher = tf.keras.Model(teacher.inputs, teacher.outputs, name="teacher")
    teacher.trainable = False
    inputs = tf.keras.Input(student.input_shape[1:], name="image")
    outputs = tf.keras.layers.Concatenate(name="student_teacher")(
        [student(inputs), teacher(inputs, training=False)])
    return tf.keras.Model(inputs, outputs, name=f"{student.name}_distill")


def _split(y_pred):
    student, teacher = tf.split(y_pred, 2, axis=-1)
    return student, teacher


@register
class DistillationLoss(tf.keras.losses.Loss):
    """Cross-entropy on the labels plus the softened KL term (module docstring)."""

    def __init__(self, temperature=2.0, weight=0.5, name="distillation", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature, self.weight = float(temperature), float(weight)

    def call(self, y_true, y_pred):
        student, teacher = _split(y_pred)
        cross_entropy = tf.keras.losses.sparse_categorical_crossentropy(y_true, student)
        soft_student = tf.nn.softmax(tf.math.log(student + _EPSILON) / self.temperature)
        soft_teacher = tf.nn.softmax(tf.math.log(teacher + _EPSILON) / self.temperature)
        kl = tf.keras.losses.kl_divergence(soft_teacher, soft_student)
        return (1.0 - self.weight) * cross_entropy + self.weight * self.temperature**2 * kl

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "weight": self.weight}


class StudentAccuracy(tf.keras.metrics.SparseCategoricalAccuracy):
    """Top-1 accuracy of the student half of the distillation model's output."""

    def __init__(self, name="accuracy", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(y_true, _split(y_pred)[0], sample_weight)
