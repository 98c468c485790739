"""Exit status of every ``horq-keras`` command, and the one-line error they print.

- 0 (:data:`OK`): done; a parity check, if any, passed.
- 1 (:data:`PARITY_FAILED`): the converted model does not match its Keras model (the
  outputs are written all the same; the report says by how much).
- 2 (:data:`BAD_INPUT`): bad input or a failure before any result: a bad option,
  a missing or corrupt file, an output that is an input, a module given to
  ``--import`` that fails, a board that cannot be reached. Nothing is written.
- 3 (:data:`CONVERSION_FAILED`): LCE could not convert the model (for example an LSTM).
"""

import sys

__all__ = ["BAD_INPUT", "CONVERSION_FAILED", "EPILOG", "OK", "PARITY_FAILED", "fail"]

OK, PARITY_FAILED, BAD_INPUT, CONVERSION_FAILED = 0, 1, 2, 3

#: The ``--help`` epilog of every command.
EPILOG = """\
exit status:
  0  done (parity within tolerance where it is checked)
  1  parity check failed: the converted model does not match its Keras model
  2  bad input or a failure before any result (bad option, missing or corrupt file,
     an output that is an input, a failing --import, an unreachable board); one
     line on stderr, nothing written
  3  conversion failed: LCE could not convert the model (e.g. an LSTM)"""


def fail(command, error, status=BAD_INPUT):
    """Print ``horq-keras COMMAND: error: ...`` on one line of stderr; return ``status``."""
    message = " ".join(str(error).split())
    print(f"horq-keras {command}: error: {message}", file=sys.stderr)
    return status
