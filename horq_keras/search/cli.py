"""Options of ``horq-keras search``; the job itself is :func:`horq_keras.search.search.run`.

Only argparse and plain checks here: TensorFlow loads when the command runs.
"""

import argparse
import math
import pathlib
import re

from horq_keras.argtypes import folder_path, int_at_least
from horq_keras.datasets.sources import CHANNELS, parse_source, source_type
from horq_keras.exit_status import EPILOG
from horq_keras.training.cluster import add_arguments as add_scale_out_arguments
from horq_keras.training.recipes import RECIPES, add_override_options

__all__ = ["COST_UNITS", "cost_budget", "passthrough", "register"]

#: ``--max-cost`` units: suffix -> (the cost it bounds, factor to that cost's unit).
COST_UNITS = {"ms": ("ms", 1.0), "M": ("instructions", 1e6), "MB": ("size_mb", 1.0)}
_BUDGET = re.compile(r"^\s*([-+0-9.eE]+)\s*(ms|M|MB)?\s*$")


def cost_budget(text):
    """``--max-cost``: a positive number with a unit, ``ms`` (estimated Raspberry Pi 4B
    milliseconds, the default), ``M`` (millions of aarch64 instructions) or ``MB`` (size of
    the ``.tflite``); ``(cost key, value in that key's unit)``."""
    match = _BUDGET.match(text)
    value = math.nan
    if match:
        try:
            value = float(match.group(1))
        except ValueError:
            pass
    if not match or not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"must be a number > 0 with an optional unit ms (default), M (millions of "
            f"aarch64 instructions) or MB (model size); got {text!r}")
    key, factor = COST_UNITS[match.group(2) or "ms"]
    return key, value * factor


def passthrough(parser, add):
    """Call ``add(parser)`` (the trainer's own option adder) and return, for each option it
    added, ``(dest, option string, is a flag, default)``: what the search hands on to every
    ``horq-keras train`` it starts when the user gave it."""
    before = len(parser._actions)
    add(parser)
    return [(action.dest, action.option_strings[0], action.nargs == 0, action.default)
            for action in parser._actions[before:]]


def _run(args):
    from horq_keras.search.search import run

    return run(args)


def register(subparsers):
    """Add the ``search`` subcommand to the ``horq-keras`` parser."""
    parser = subparsers.add_parser(
        "search",
        help="train a space of HORQ / Group-Net models, cost each converted model on ARM and "
             "write the accuracy-cost Pareto front; --max-cost picks a model",
        description="Successive halving on epochs over the candidates of --space (each "
                    "trained, converted and verified by horq-keras train, in processes of "
                    "its own), the cost of each converted model in aarch64 instructions "
                    "(cached emulator counts, else the fitted cost model), the Pareto front "
                    "of accuracy against cost as a table, frontier.json and frontier.png in "
                    "--output-dir; --max-cost copies the most accurate verified model under "
                    "the budget to OUTPUT/chosen/.",
        epilog="An interrupted search resumes when the same command is run again: finished "
               "runs are read from OUTPUT/runs/, not retrained.\n\n" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--space", nargs="+", action="append", default=[],
                        metavar="MODEL KEY=V1/V2",
                        help="a registry model and the --model-arg values to try, '/' "
                             "between values; repeatable (e.g. --space groupnet_resnet18 "
                             "num_bases=1/3/5 activation_bits=1/2 partition=layerwise/v1 "
                             "stage_filters=8,16,32,64)")
    parser.add_argument("--output-dir", type=folder_path, default=pathlib.Path("runs/search"),
                        help="the frontier, the chosen model and the runs (runs/) "
                             "(default: %(default)s)")
    parser.add_argument("--min-epochs", type=int_at_least(1), default=1,
                        help="epochs of the first rung (default: %(default)s); the last rung "
                             "trains the recipe's --epochs")
    parser.add_argument("--eta", type=int_at_least(2), default=2,
                        help="halving factor: 1/eta of a rung (and its front) go on, with "
                             "eta times the epochs (default: %(default)s)")
    parser.add_argument("--jobs", type=int_at_least(1), default=1,
                        help="training processes at a time (default: %(default)s)")
    parser.add_argument("--max-cost", type=cost_budget, default=None, metavar="BUDGET",
                        help="copy the most accurate verified candidate costing at most "
                             "BUDGET to OUTPUT/chosen/: e.g. 5ms (estimated Raspberry Pi 4B "
                             "milliseconds), 40M (million aarch64 instructions), 0.5MB")
    parser.add_argument("--arm-counts", type=pathlib.Path, default=None, metavar="JSON",
                        help="per-operator instruction counts cached by benchmarks/"
                             "arm_emulated.py (.arm/counts.json); operators found there are "
                             "counted, the others estimated by --cost-model")
    parser.add_argument("--cost-model", type=pathlib.Path, default=None, metavar="JSON",
                        help="fitted cost model (default: the package's, fitted by "
                             "benchmarks/arm_cost_model.py)")
    parser.add_argument("--data", type=source_type(), default=parse_source("mnist"),
                        help="as for train: mnist (default) | idx:DIR | folder:DIR | tfds:NAME")
    parser.add_argument("--data-dir", type=pathlib.Path, default=None,
                        help="as for train: MNIST IDX or TFDS directory")
    parser.add_argument("--channels", type=int, choices=CHANNELS, default=None)
    parser.add_argument("--image-size", type=int_at_least(8), default=None)
    parser.add_argument("--recipe", choices=list(RECIPES), default="lenet-mnist",
                        help="training preset of every run (default: %(default)s)")
    parser.add_argument("--seed", type=int_at_least(0, 2**32 - 1), default=0)
    parser.add_argument("--limit-train", type=int_at_least(1), default=None, metavar="N")
    parser.add_argument("--limit-test", type=int_at_least(1), default=None, metavar="N")
    parser.add_argument("--verify-samples", type=int_at_least(1), default=1000, metavar="N",
                        help="validation images of each run's parity check (default: "
                             "%(default)s)")
    train_options = (passthrough(parser, add_override_options)
                     + passthrough(parser, add_scale_out_arguments))
    parser.set_defaults(func=_run, on_interrupt="run the same command to resume",
                        train_options=train_options)
