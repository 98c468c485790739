"""The memory a training run needs, estimated before anything is allocated.

:func:`footprint` builds the model inside a throw-away ``tf.Graph``, where Keras creates
no variable values, and counts its parameters and the elements of every layer's output
for one image. A run on the CPU then needs about ``4 bytes x (4 x parameters + 2 x
batch x activations)``: the weights, their gradients and two optimizer slots (Adam's),
plus every layer's output kept for back-propagation and its gradient. (Measured: a
Group-Net ResNet-18 with 2 bases at 64x64 and batch 128 held 14 GB; this estimate says
14.2 GB.) With recomputed Group-Net branches (``recompute_branches=True``) the layer
outputs counted are those a step still holds
(:func:`~horq_keras.groupnet.recompute.kept_activations`; compared with measured peaks in
``benchmarks/results/training_memory.md``). :func:`check` refuses a run that needs more
than the memory available, naming the ``--batch-size`` that fits, or ``--image-size`` when
not even one image does.
"""

import dataclasses
import pathlib

import tensorflow as tf

from horq_keras.groupnet.recompute import kept_activations

__all__ = ["Footprint", "NotEnoughMemory", "available_memory", "check", "footprint"]

_BYTES = 4  # float32
_WEIGHT_COPIES = 4  # weights, gradients, two optimizer slots
_ACTIVATION_COPIES = 2  # the outputs kept for back-propagation and their gradients


class NotEnoughMemory(ValueError):
    """The run would need more memory than the machine has (exit code 2)."""


@dataclasses.dataclass(frozen=True)
class Footprint:
    """Parameters of a model and the elements of its layers' outputs for one image."""

    parameters: int
    activations: int

    def bytes(self, batch):
        """Bytes a training step of ``batch`` images needs (the module docstring)."""
        return _BYTES * (_WEIGHT_COPIES * self.parameters
                         + _ACTIVATION_COPIES * batch * self.activations)

    def batch_that_fits(self, available):
        """The largest batch whose step needs at most ``available`` bytes (0 if none)."""
        free = available / _BYTES - _WEIGHT_COPIES * self.parameters
        return max(0, int(free // (_ACTIVATION_COPIES * self.activations)))


def footprint(build):
    """The :class:`Footprint` of the model ``build()`` returns, built without allocating."""
    with tf.Graph().as_default():
        model = build()
        return Footprint(int(model.count_params()), kept_activations(model))


def available_memory(meminfo="/proc/meminfo", cgroup="/sys/fs/cgroup"):
    """Bytes this process can still use: ``MemAvailable``, less where a cgroup (v2)
    limits the memory; None where neither is known (not Linux)."""
    limits = []
    try:
        for line in pathlib.Path(meminfo).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    try:
        limit = pathlib.Path(cgroup, "memory.max").read_text().strip()
        used = int(pathlib.Path(cgroup, "memory.current").read_text())
        if limit != "max":
            limits.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return min(limits) if limits else None


def _gb(count):
    return f"{count / 1e9:,.1f} GB"


def check(needed, batch, available, input_shape, inputs_option="--image-size", hint=""):
    """Raise :class:`NotEnoughMemory` when a step of ``batch`` images of the model
    ``needed`` (a :class:`Footprint`) needs more than ``available`` bytes; the message
    names ``--batch-size`` with the batch that fits, or ``inputs_option`` (what sets the
    input shape) when not even one image fits, then ``hint`` (another way out)."""
    if available is None or needed.bytes(batch) <= available:
        return
    fits = needed.batch_that_fits(available)
    what = (f"about {_gb(needed.bytes(batch))} (weights, gradients and optimizer state "
            f"{_gb(needed.bytes(0))}, activations of {batch} images of shape "
            f"{tuple(input_shape)} the rest) and {_gb(available)} are available")
    if fits:
        raise NotEnoughMemory(f"--batch-size: a batch of {batch} needs {what}; "
                              f"--batch-size {fits} fits.{hint}")
    raise NotEnoughMemory(f"{inputs_option}: the model on inputs of shape "
                          f"{tuple(input_shape)} needs {what} even for one image; choose "
                          f"smaller inputs or a smaller model.{hint}")
