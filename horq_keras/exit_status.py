"""Exit status of every ``horq-keras`` command, and the one-line error they print.

- 0 (:data:`OK`): done; a parity check, if any, passed.
- 1 (:data:`PARITY_FAILED`): the converted model does not match its Keras model (the
  outputs are written all the same; the report says by how much).
- 2 (:data:`BAD_INPUT`): bad input or a failure before any result: a bad option,
  a missing or corrupt file, an output that is an input, a module given to
  ``--import`` that fails, a board that cannot be reached. Nothing is written.
- 3 (:data:`CONVERSION_FAILED`): LCE could not convert the model (for example an LSTM).
- 4 (:data:`INTERNAL_ERROR`): an unexpected error (a bug): one line naming it, the
  traceback with ``--verbose``.
- 130 (:data:`INTERRUPTED`) / 143 (:data:`TERMINATED`): stopped by SIGINT (Ctrl-C) /
  SIGTERM; one line, no traceback (:func:`call`).
"""

import signal
import sys
import threading
import traceback

__all__ = ["BAD_INPUT", "CONVERSION_FAILED", "EPILOG", "INTERNAL_ERROR", "INTERRUPTED", "OK",
           "PARITY_FAILED", "TERMINATED", "Terminated", "call", "fail"]

OK, PARITY_FAILED, BAD_INPUT, CONVERSION_FAILED, INTERNAL_ERROR = 0, 1, 2, 3, 4
#: 128 + the signal's number, as shells report a process killed by it.
INTERRUPTED, TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGTERM

#: The ``--help`` epilog of every command.
EPILOG = """\
exit status:
  0  done (parity within tolerance where it is checked)
  1  parity check failed: the converted model does not match its Keras model
  2  bad input or a failure before any result (bad option, missing or corrupt file,
     an output that is an input, a failing --import, an unreachable board); one
     line on stderr, nothing written
  3  conversion failed: LCE could not convert the model (e.g. an LSTM)
  4  internal error (a bug): one line; --verbose shows the traceback
  130  interrupted (Ctrl-C, SIGINT); 143  terminated (SIGTERM): one line, no
     traceback; an interrupted train resumes when the same command is run again"""


def fail(command, error, status=BAD_INPUT):
    """Print ``horq-keras COMMAND: error: ...`` on one line of stderr; return ``status``."""
    message = " ".join(str(error).split())
    print(f"horq-keras {command}: error: {message}", file=sys.stderr)
    return status


class Terminated(BaseException):
    """SIGTERM, raised in the main thread while :func:`call` runs a command."""


def _terminate(signum, frame):
    raise Terminated


def call(command, func, args, *, verbose=False, on_interrupt=""):
    """``func(args)``'s exit status, with interrupts and unexpected errors as statuses.

    SIGINT (``KeyboardInterrupt``) and SIGTERM end the command with one line
    (``interrupted`` and ``on_interrupt``, e.g. how to resume) and :data:`INTERRUPTED` /
    :data:`TERMINATED`; any other exception with one line naming it and
    :data:`INTERNAL_ERROR` (the traceback too with ``verbose``).
    """
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    hint = f"; {on_interrupt}" if on_interrupt else ""
    try:
        return func(args)
    except KeyboardInterrupt:
        print(f"horq-keras {command}: interrupted{hint}", file=sys.stderr)
        return INTERRUPTED
    except Terminated:
        print(f"horq-keras {command}: terminated{hint}", file=sys.stderr)
        return TERMINATED
    except Exception as error:  # noqa: BLE001 - the last resort: a status, not a traceback
        if verbose:
            traceback.print_exc()
        return fail(command, f"internal error: {type(error).__name__}: {error} (run with "
                             f"--verbose for the traceback)", INTERNAL_ERROR)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
