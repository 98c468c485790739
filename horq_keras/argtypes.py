"""argparse ``type=`` checks shared by the ``horq-keras`` subcommands.

Each raises ``argparse.ArgumentTypeError``, so a bad value exits with status 2 and a
message naming the option and the allowed values.
"""

import argparse
import math
import pathlib

__all__ = ["folder_path", "int_at_least", "non_negative_number", "positive_number"]


def folder_path(text):
    """A path that names a folder: an empty value (the current directory) is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must name a folder; got {text!r} (the current "
                                         f"directory)")
    return pathlib.Path(text)


def int_at_least(minimum, maximum=None):
    """A parser of integers >= ``minimum`` (and <= ``maximum`` when given)."""
    allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be an integer {allowed}; got {text!r}")
        return value

    return parse


def _number(text, allowed, is_allowed):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and is_allowed(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number {allowed}; got {text!r}")
    return value


def positive_number(text):
    """A finite float > 0."""
    return _number(text, "> 0", lambda value: value > 0)


def non_negative_number(text):
    """A finite float >= 0."""
    return _number(text, ">= 0", lambda value: value >= 0)
