"""Group-Net (Zhuang et al., "Structured binary neural networks", CVPR 2019).

A network is cut into groups; each group is rebuilt from K homogeneous binary branches
summed with learnable scales, ``G(x) ≈ sum_i lambda_i H_i(x)`` (eq. 3, 5, 6).

- :mod:`~horq_keras.groupnet.quantizers` — binary weights (eq. 1) and k-bit
  activations (eq. 2).
- :mod:`~horq_keras.groupnet.branches` — the building block (``binary_group``,
  ``BranchScales``, the quantized ``conv_unit``).
- :mod:`~horq_keras.groupnet.partition` — layer-wise, Group-Net v1/v2/v3 and free
  partitions of a network body.
- :mod:`~horq_keras.groupnet.resnet`, :mod:`~horq_keras.groupnet.alexnet` — model builders.
"""

from horq_keras.groupnet.alexnet import (
    binary_alexnet,
    groupnet_alexnet,
    layerwise_alexnet,
)
from horq_keras.groupnet.branches import (
    BranchScales,
    binary_conv,
    binary_group,
    conv_unit,
)
from horq_keras.groupnet.partition import PARTITIONS, binary_body, resolve_partition
from horq_keras.groupnet.quantizers import (
    ACTIVATION_BITS,
    BinaryWeight,
    UniformActivation,
)
from horq_keras.groupnet.resnet import (
    binary_resnet18,
    groupnet_resnet,
    groupnet_resnet18,
    groupnet_resnet34,
    groupnet_resnet50,
    layerwise_resnet18,
)

#: The public API. ``binary_conv``, ``conv_unit``, ``binary_body`` and
#: ``resolve_partition`` stay importable from here for custom builders.
__all__ = [
    "ACTIVATION_BITS",
    "PARTITIONS",
    "BinaryWeight",
    "BranchScales",
    "UniformActivation",
    "binary_alexnet",
    "binary_group",
    "binary_resnet18",
    "groupnet_alexnet",
    "groupnet_resnet",
    "groupnet_resnet18",
    "groupnet_resnet34",
    "groupnet_resnet50",
    "layerwise_alexnet",
    "layerwise_resnet18",
]
