"""The one rule for every command's outputs: check them all before any work.

:func:`check_outputs` resolves every output path of a call first and refuses (with a
``ValueError`` naming the options, so the command exits with status 2 before doing
anything) an output that

- is one of the call's inputs, or another output of the same call — the same file,
  through symlinks, hard links or different spellings of one path;
- names a directory (``-o newdir/``, an existing directory) or lies in a directory that
  does not exist or cannot be written (:func:`~horq_keras.tflite.files.check_writable`).

Outputs are then written with :mod:`horq_keras.tflite.files` (atomically: the previous
file stays whole until the new one is complete and replaces it by rename).
"""

import os

from horq_keras.tflite.files import check_writable

__all__ = ["check_outputs", "same_file"]


def same_file(a, b):
    """Whether paths ``a`` and ``b`` name the same file (or directory), existing or not."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet): compare the resolved paths
        return os.path.realpath(a) == os.path.realpath(b)


def check_outputs(outputs, inputs=None):
    """Check every output path of one call, before any work; return them resolved.

    Args:
        outputs: ``{option: path or None}`` (``{"-o": "m.tflite", "--report": None}``);
            None entries (options not given) are skipped.
        inputs: ``{argument: path or None}`` the call reads.

    Returns:
        ``{option: path}`` of the given outputs.

    Raises:
        ValueError: an output is an input or another output, or names a directory.
        FileNotFoundError, NotADirectoryError, PermissionError: its directory is missing
            or not writable (see :func:`~horq_keras.tflite.files.check_writable`).
    """
    given = {option: os.fspath(path) for option, path in outputs.items() if path is not None}
    sources = {name: os.fspath(path) for name, path in (inputs or {}).items()
               if path is not None}
    seen = {}
    for option, path in given.items():
        if path.endswith(("/", os.sep)):
            raise ValueError(f"`{option}` must be a file path; {path!r} names a directory.")
        for name, source in sources.items():
            if same_file(path, source):
                raise ValueError(
                    f"`{option}` ({path!r}) is the input {name} ({source!r}): writing it would "
                    f"destroy the input. Choose another output path."
                )
        for other, other_path in seen.items():
            if same_file(path, other_path):
                raise ValueError(
                    f"`{option}` and `{other}` name the same file ({path!r}); each output "
                    f"needs its own path."
                )
        check_writable(path, option)
        seen[option] = path
    return given
