"""Writing a command's output files: check them all before any work, then write each
atomically.

:func:`check_outputs` is the one rule for every command's outputs: it resolves every
output path of a call first and refuses (with a ``ValueError`` naming the options, so the
command exits with status 2 before doing anything) an output that

- is one of the call's inputs, or another output of the same call — the same file,
  through symlinks, hard links or different spellings of one path;
- names a directory (``-o newdir/``, an existing directory) or lies in a directory that
  does not exist or cannot be written (:func:`check_writable`).

Outputs are then written atomically (:func:`atomic_open`, :func:`atomic_write_bytes`,
:func:`atomic_write_text`): a reader sees the old file or the complete new one, never a
part. The data goes to a temporary file in the destination's directory (same file
system), is flushed to disk, and replaces the destination with ``os.replace``; on any
error the temporary file is removed and the destination is left as it was.

Nothing here imports TensorFlow or another module of the package.
"""

import contextlib
import os
import tempfile

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "check_outputs",
           "check_writable", "same_file"]


def check_writable(path, argument="output_path"):
    """Fail early, before any work, when ``path`` cannot be written.

    Creates and removes a temporary file in the destination's directory (the only
    check that also holds for root and read-only file systems). Raises ``ValueError``
    (naming ``argument``) for an empty path or a path that is a directory,
    ``FileNotFoundError`` / ``NotADirectoryError`` when the parent directory is
    missing, and ``PermissionError`` when it cannot be written.
    """
    path = os.fspath(path)
    if not path:
        raise ValueError(f"`{argument}` must be a file path; got an empty string.")
    if os.path.isdir(path):
        raise ValueError(f"`{argument}` must be a file path; {path!r} is a directory.")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(directory):
        raise FileNotFoundError(
            f"`{argument}`: the directory {directory!r} of {path!r} does not exist."
        )
    if not os.path.isdir(directory):
        raise NotADirectoryError(
            f"`{argument}`: {directory!r}, the parent of {path!r}, is not a directory."
        )
    try:
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".horq_keras_probe_")
    except OSError as error:
        raise PermissionError(
            f"`{argument}`: cannot write in the directory {directory!r} of {path!r} "
            f"({error.strerror or error})."
        ) from error
    os.close(fd)
    os.unlink(probe)
    return path


@contextlib.contextmanager
def atomic_open(path, mode="w", *, argument="path"):
    """Open a temporary file next to ``path``; when the block ends without an error,
    flush it to disk and move it onto ``path``, else remove it.

    ``mode`` is ``"w"`` (text, UTF-8) or ``"wb"``. The file gets the permissions of a
    newly created file (0666 less the umask), not ``mkstemp``'s 0600.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"`mode` must be 'w' or 'wb'; got {mode!r}.")
    path = check_writable(path, argument)
    fd, tmp_path = tempfile.mkstemp(
        dir=os.path.dirname(os.path.abspath(path)), prefix=f".{os.path.basename(path)}.",
        suffix=".tmp",
    )
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as tmp:
            yield tmp
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        raise


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes-like) to ``path`` atomically; return the path."""
    with atomic_open(path, "wb") as file:
        file.write(data)
    return os.fspath(path)


def atomic_write_text(path, text, encoding="utf-8"):
    """Write the string ``text`` to ``path`` atomically; return the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
            or not writable (see :func:`check_writable`).
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
