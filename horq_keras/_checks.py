"""Argument checks shared by quantizers, layers, builders and the command line.

Plain Python (no TensorFlow, no NumPy), so that the CLI can use them to parse its
arguments. Each raises ``ValueError`` with a message that names the argument, the
allowed values and what was given, at construction (never later, at call or gradient
time). NumPy numbers pass as the numbers they are (they register with :mod:`numbers`;
NumPy's bool does not).
"""

import math
import numbers

__all__ = ["BETA_FORMS", "PAD_VALUES", "check_beta_form", "check_padding",
           "check_pad_values", "finite_number", "is_positive_integer", "positive_integer",
           "positive_number"]

#: Where ``beta_i`` of a HORQ convolution's input is taken. See ``HORQConv2D``.
BETA_FORMS = ("column", "pixel", "sample")

#: ``pad_values`` LCE can lower: 1.0 is its fast "same-one" padding, 0.0 converts for
#: the arm target but blocks fusions and the bitpacked output.
PAD_VALUES = (0.0, 1.0)


def is_positive_integer(value):
    """True for an integer >= 1 (Python or NumPy) that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def positive_integer(value, name, meaning):
    """``value`` as an int if it is an integer >= 1 (Python or NumPy; not a bool, not a
    float such as 2.0), else raise ``ValueError`` naming ``name`` and ``meaning``."""
    if not is_positive_integer(value):
        raise ValueError(
            f"`{name}` must be an integer >= 1 ({meaning}); "
            f"got {value!r} of type {type(value).__name__}."
        )
    return int(value)


def positive_number(value, name, meaning, *, allow_none=False):
    """``value`` as a float if it is a finite number > 0 (or None when ``allow_none``)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
        math.isfinite(value) and value > 0
    ):
        allowed = "a finite number > 0" + (" or None" if allow_none else "")
        raise ValueError(f"`{name}` must be {allowed} ({meaning}); got {value!r}.")
    return float(value)


def finite_number(value, name, meaning):
    """``value`` as a float if it is a finite number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number ({meaning}); got {value!r}.")
    return float(value)


def check_pad_values(value):
    """``pad_values`` as a float if LCE can lower it (one of :data:`PAD_VALUES`)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or float(value) not in PAD_VALUES:
        raise ValueError(
            f"`pad_values` must be 1.0 (LCE's fast 'same-one' padding) or 0.0 (zero "
            f"padding: converts for the arm target, slower); got {value!r}."
        )
    return float(value)


def check_padding(value):
    """``padding`` of a convolution: ``"valid"`` or ``"same"`` (any case)."""
    if not isinstance(value, str) or value.lower() not in ("valid", "same"):
        raise ValueError(f"`padding` must be 'valid' or 'same'; got {value!r}.")
    return value


def check_beta_form(beta_form):
    """Return ``beta_form`` if it is one of :data:`BETA_FORMS`, else raise ``ValueError``."""
    if beta_form not in BETA_FORMS:
        raise ValueError(
            f"`beta_form` must be one of {', '.join(repr(f) for f in BETA_FORMS)}; "
            f"got {beta_form!r}."
        )
    return beta_form
