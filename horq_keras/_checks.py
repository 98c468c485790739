"""Argument checks shared by quantizers, layers and builders."""


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
