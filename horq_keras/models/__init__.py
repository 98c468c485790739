"""Model builders (larq-zoo style, keyword-only) and the order-aware summary."""

from horq_keras.models.lenet import horq_lenet
from horq_keras.models.resnet import horq_resnet18
from horq_keras.models.summary import summary

__all__ = ["horq_lenet", "horq_resnet18", "summary"]
