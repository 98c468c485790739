"""Atomic file writes: a reader sees the old file or the complete new one, never a part.

The data goes to a temporary file in the destination's directory (same file system),
is flushed to disk, and replaces the destination with ``os.replace``. On any error the
temporary file is removed and the destination is left as it was.
"""

import contextlib
import os
import tempfile

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "check_writable"]


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
