"""``horq-keras`` command line: one subcommand per module, parsed with argparse.

Each module in :data:`COMMAND_MODULES` defines ``register(subparsers)``, which adds its
subcommand(s) and sets ``func`` (called with the parsed arguments, returning an exit
code) as a default.
"""

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "horq_keras.train",
    "horq_keras.converters.cli",
    "horq_keras.bench.cli",
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="horq-keras",
        description="Train, convert, verify and benchmark HORQ / Group-Net binary networks.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
