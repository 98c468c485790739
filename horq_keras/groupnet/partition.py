"""How a binary body is cut into groups: the decompositions Group-Net compares (§3.2–3.4).

A network body is a sequence of *units* (residual blocks of a ResNet, binary layers
of AlexNet). A *partition* says which consecutive units form one group; each group is
then rebuilt from K binary branches (:func:`horq_keras.groupnet.branches.binary_group`):

- ``"layerwise"`` — every binary convolution is its own group (eq. 3): the skip
  connections stay outside the branches, in full precision.
- ``"v1"`` — one unit per group (Group-Net, eq. 5).
- ``"v2"`` — two consecutive units per group (eq. 6); an odd last unit forms a group alone.
- ``"v3"`` — the whole body is one group: an ensemble of K binary networks that share
  the full-precision first layer and classifier.
- a sequence of positive integers — the sizes of consecutive groups, summing to the
  number of units: any point of the search space of §3.4.
"""

import functools

from horq_keras._checks import is_positive_integer
from horq_keras.groupnet.branches import binary_group, check_num_bases, conv_unit
from horq_keras.groupnet.quantizers import check_activation_bits

__all__ = ["PARTITIONS", "binary_body", "resolve_partition"]

#: Named partitions (see the module docstring); a sequence of group sizes is also accepted.
PARTITIONS = ("layerwise", "v1", "v2", "v3")


def resolve_partition(partition, num_units, unit="unit"):
    """``"layerwise"`` or the tuple of group sizes that ``partition`` stands for.

    Raises:
        ValueError: for an unknown name, sizes that are not positive integers, or
            sizes that do not add up to ``num_units`` (the message states the count).
    """
    if isinstance(partition, str):
        if partition == "layerwise":
            return partition
        if partition == "v1":
            return (1,) * num_units
        if partition == "v2":
            return (2,) * (num_units // 2) + (1,) * (num_units % 2)
        if partition == "v3":
            return (num_units,)
        raise ValueError(
            f"`partition` must be one of {PARTITIONS} or a sequence of group sizes; "
            f"got {partition!r}."
        )
    try:
        sizes = tuple(partition)
    except TypeError:
        sizes = None
    if not sizes or not all(map(is_positive_integer, sizes)):
        raise ValueError(
            f"`partition` must be one of {PARTITIONS} or a non-empty sequence of positive "
            f"integers (sizes of consecutive groups); got {partition!r}."
        )
    if sum(sizes) != num_units:
        raise ValueError(
            f"`partition` must cover the network's {num_units} {unit}s exactly; the group "
            f"sizes {sizes} add up to {sum(sizes)}."
        )
    return sizes


def _layerwise_conv(x, filters, kernel_size, *, strides=1, padding="same", name,
                    num_bases, branches, **quantization):
    """One convolution rebuilt as ``sum_i lambda_i B_i(x)`` (eq. 3)."""
    def branch(x, prefix):
        return conv_unit(x, filters, kernel_size, strides=strides, padding=padding,
                         name=prefix, **quantization)

    return binary_group(x, branch, num_bases=num_bases, name=name, branches=branches)


def binary_body(x, units, *, partition, num_bases, activation_bits=1,
                per_channel_weights=True, unit="unit", branches=None):
    """Build the binary body of a network from its units and a partition.

    Args:
        x: the body's input (output of the full-precision first layer).
        units: sequence of ``(name, build)``; ``build(x, conv, name) -> tensor`` builds
            one unit, creating every quantized convolution through
            ``conv(x, filters, kernel_size, *, strides=1, padding="same", name)``.
        partition: see the module docstring.
        num_bases: K, binary branches per group.
        activation_bits, per_channel_weights: quantization of every branch
            convolution (see :func:`horq_keras.groupnet.branches.binary_conv`).
        unit: what a unit is called in error messages ("residual block", "layer").
        branches: a list to which the name prefix of every branch is appended, or None
            (see :func:`~horq_keras.groupnet.branches.binary_group`).

    Returns:
        The body's output tensor (full precision: the scaled sum of the last group).
    """
    check_num_bases(num_bases)
    if not isinstance(per_channel_weights, bool):
        raise TypeError(
            f"`per_channel_weights` must be True or False; got {per_channel_weights!r}."
        )
    quantization = {
        "activation_bits": check_activation_bits(activation_bits),
        "per_channel_weights": per_channel_weights,
    }
    sizes = resolve_partition(partition, len(units), unit)
    if sizes == "layerwise":
        conv = functools.partial(_layerwise_conv, num_bases=num_bases, branches=branches,
                                 **quantization)
        for name, build in units:
            x = build(x, conv, name)
        return x

    conv = functools.partial(conv_unit, **quantization)
    start = 0
    for group, size in enumerate(sizes, start=1):
        members = units[start:start + size]
        start += size

        def branch(x, prefix, members=members):
            for name, build in members:
                x = build(x, conv, f"{prefix}_{name}")
            return x

        x = binary_group(x, branch, num_bases=num_bases, name=f"group{group}",
                         branches=branches)
    return x
