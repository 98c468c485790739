"""The ``--data`` value of ``horq-keras train`` (no TensorFlow: the parser stays instant)."""

import argparse
import dataclasses

__all__ = ["KINDS", "DataSource", "parse_source"]

#: ``mnist``, ``idx:DIR``, ``folder:DIR``, ``tfds:NAME``.
KINDS = ("mnist", "idx", "folder", "tfds")


@dataclasses.dataclass(frozen=True)
class DataSource:
    """A parsed ``--data`` value."""

    kind: str
    location: str = None

    def __str__(self):
        return self.kind if self.location is None else f"{self.kind}:{self.location}"


def parse_source(text):
    """argparse ``type=`` of ``--data``."""
    kind, sep, location = text.partition(":")
    if kind == "mnist" and not sep:
        return DataSource("mnist")
    if kind in KINDS[1:] and location:
        return DataSource(kind, location)
    raise argparse.ArgumentTypeError(
        f"must be mnist, idx:DIR, folder:DIR or tfds:NAME; got {text!r}")
