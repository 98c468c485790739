"""``horq-keras`` command line: one subcommand per module, parsed with argparse.

Each module in :data:`COMMAND_MODULES` defines ``register(subparsers)``, which adds its
subcommand(s) and sets ``func`` (called with the parsed arguments, returning an exit
code) as a default, and optionally ``on_interrupt`` (what to do after Ctrl-C: see
:func:`horq_keras.exit_status.call`). These modules import no TensorFlow, larq or LCE: the heavy modules
load inside ``func``, so ``horq-keras --help`` answers at once.

TensorFlow's C++ log lines (CUDA, TensorRT, CPU features) and its Python warnings are
off unless ``--verbose`` is given or the user set ``TF_CPP_MIN_LOG_LEVEL`` themselves.
"""

import argparse
import importlib
import importlib.metadata
import logging
import os
import sys

from horq_keras.exit_status import EPILOG, call

__all__ = ["COMMAND_MODULES", "QUIET_TF_LOG_LEVEL", "build_parser", "main"]

COMMAND_MODULES = (
    "horq_keras.training.cli",
    "horq_keras.converters.cli",
    "horq_keras.bench.cli",
    "horq_keras.search.cli",
)

#: ``TF_CPP_MIN_LOG_LEVEL`` of a quiet run: 3 hides the C++ INFO, WARNING and ERROR lines
#: (TensorFlow 2.16 on a machine without CUDA logs three "Unable to register cuFFT/cuDNN/
#: cuBLAS factory" errors at import); TensorFlow's real failures still raise exceptions.
QUIET_TF_LOG_LEVEL = "3"


def build_parser():
    parser = argparse.ArgumentParser(
        prog="horq-keras",
        description="Train, convert, verify and benchmark HORQ / Group-Net binary networks.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {importlib.metadata.version('horq-keras')}")
    parser.add_argument(
        "--verbose", action="store_true",
        help="show TensorFlow's log lines (hidden by default unless TF_CPP_MIN_LOG_LEVEL "
             "is set)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def _quiet_tensorflow():
    """Hide TensorFlow's logging unless the user chose a level; must run before
    TensorFlow is imported."""
    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = QUIET_TF_LOG_LEVEL
        logging.getLogger("tensorflow").setLevel(logging.ERROR)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.verbose:
        _quiet_tensorflow()
    return call(args.command, args.func, args, verbose=args.verbose,
                on_interrupt=getattr(args, "on_interrupt", ""))


if __name__ == "__main__":
    sys.exit(main())
