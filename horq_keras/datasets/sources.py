"""The ``--data`` value of every command (no TensorFlow: the parsers stay instant).

One grammar for ``train``, ``convert`` and ``verify``:

- ``mnist`` — MNIST's IDX files, checksum-verified, from ``--data-dir``,
  ``$HORQ_KERAS_MNIST_DIR`` or ``./data/mnist``;
- ``idx:DIR`` — any data in MNIST's IDX layout in ``DIR`` (no checksums);
- ``folder:DIR`` — ``DIR/train/<class>/*`` and ``DIR/val/<class>/*`` images;
- ``tfds:NAME`` — a dataset prepared by tensorflow-datasets in ``--data-dir``;
- ``PATH.npy`` — an array of inputs, already scaled as the model expects (only where a
  command takes arrays: ``convert`` and ``verify``).

``train`` trains on the training split and validates on the validation split; ``convert``
and ``verify`` check parity on the validation split, so a model is verified on the data
it was validated on.
"""

import argparse
import dataclasses

__all__ = ["CHANNELS", "DATASET_KINDS", "KINDS", "DataSource", "parse_source", "source_type"]

#: Dataset sources: ``mnist``, ``idx:DIR``, ``folder:DIR``, ``tfds:NAME``.
DATASET_KINDS = ("mnist", "idx", "folder", "tfds")
#: Every source: the datasets and ``PATH.npy``.
KINDS = (*DATASET_KINDS, "npy")
#: Channel counts a folder's images can be decoded to (``--channels``).
CHANNELS = (1, 3)


@dataclasses.dataclass(frozen=True)
class DataSource:
    """A parsed ``--data`` value."""

    kind: str
    location: str = None

    def __str__(self):
        if self.kind == "npy":
            return self.location
        return self.kind if self.location is None else f"{self.kind}:{self.location}"


def _allowed(arrays):
    return ("mnist, idx:DIR, folder:DIR, tfds:NAME or PATH.npy" if arrays
            else "mnist, idx:DIR, folder:DIR or tfds:NAME")


def parse_source(text, *, arrays=False):
    """The :class:`DataSource` of ``text``; ``arrays``: also accept ``PATH.npy``.

    Raises ``argparse.ArgumentTypeError`` listing the allowed forms.
    """
    kind, sep, location = text.partition(":")
    if kind == "mnist" and not sep:
        return DataSource("mnist")
    if kind in DATASET_KINDS[1:] and location:
        return DataSource(kind, location)
    if arrays and text.endswith(".npy"):
        return DataSource("npy", text)
    raise argparse.ArgumentTypeError(f"must be {_allowed(arrays)}; got {text!r}")


def source_type(*, arrays=False):
    """argparse ``type=`` of ``--data`` (``arrays``: ``convert`` and ``verify``)."""
    def parse(text):
        return parse_source(text, arrays=arrays)

    parse.__name__ = "data source"
    return parse
