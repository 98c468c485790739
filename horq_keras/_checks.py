"""Argument checks shared by quantizers, layers, builders and the command line.

Plain Python (no TensorFlow), so that the CLI can use them to parse its arguments.
"""

#: Where ``beta_i`` of a HORQ convolution's input is taken. See ``HORQConv2D``.
BETA_FORMS = ("column", "pixel", "sample")


def positive_integer(value, name, meaning):
    """Return ``value`` if it is an integer >= 1 (not a bool), else raise ``ValueError``.

    The message names the argument ``name`` and says what the allowed values mean.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"`{name}` must be an integer >= 1 ({meaning}); "
            f"got {value!r} of type {type(value).__name__}."
        )
    return value


def check_beta_form(beta_form):
    """Return ``beta_form`` if it is one of :data:`BETA_FORMS`, else raise ``ValueError``."""
    if beta_form not in BETA_FORMS:
        raise ValueError(
            f"`beta_form` must be one of {', '.join(repr(f) for f in BETA_FORMS)}; "
            f"got {beta_form!r}."
        )
    return beta_form
