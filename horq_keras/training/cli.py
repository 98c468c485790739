"""Options of ``horq-keras train``; the job itself is :func:`horq_keras.training.train.run`.

Only argparse and plain checks here: TensorFlow loads when the command runs, not when
the parser is built (``horq-keras --help`` stays instant).
"""

import argparse
import pathlib

from horq_keras._checks import BETA_FORMS
from horq_keras.argtypes import folder_path, int_at_least
from horq_keras.converters.cli import add_tolerance_options
from horq_keras.training.cluster import add_arguments as add_scale_out_arguments
from horq_keras.training.recipes import RECIPES, add_override_options
from horq_keras.datasets.sources import CHANNELS, parse_source, source_type
from horq_keras.exit_status import EPILOG

__all__ = ["register"]


def _run(args):
    from horq_keras.training.train import run

    return run(args)


def register(subparsers):
    """Add the ``train`` subcommand to the ``horq-keras`` parser."""
    parser = subparsers.add_parser(
        "train",
        help="train any horq_keras model on MNIST, IDX data, an image folder or a TFDS "
             "dataset, convert it with LCE and verify the .tflite",
        description="Train a registered model (--list-models) with a recipe (--recipe), "
                    "convert it with Larq Compute Engine (horq_keras.converters.convert) and "
                    "check the .tflite against Keras on the validation data.",
        epilog="An interrupted run resumes (from its last finished epoch, or from "
               "conversion) when the same command is run again.\n\n" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="horq_lenet",
                        help="registered model name (default: %(default)s)")
    parser.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="builder argument, repeatable (num_bases=2, activation_bits=2, "
                             "order=3, partition=v2 or 2,2,4, ...)")
    parser.add_argument("--list-models", action="store_true",
                        help="print every model with its arguments and exit")
    parser.add_argument("--order", type=int_at_least(1), default=None,
                        help="shorthand for --model-arg order=K (HORQ models)")
    parser.add_argument("--beta-form", choices=BETA_FORMS, default=None,
                        help="shorthand for --model-arg beta_form=...; 'column' trains but "
                             "cannot be converted")
    parser.add_argument("--data", type=source_type(), default=parse_source("mnist"),
                        help="mnist (default) | idx:DIR | folder:DIR (train/ and val/ with a "
                             "subfolder per class) | tfds:NAME (prepared in --data-dir)")
    parser.add_argument("--data-dir", type=pathlib.Path, default=None,
                        help="MNIST IDX directory (default: $HORQ_KERAS_MNIST_DIR, then "
                             "./data/mnist), or the TFDS data directory of tfds:NAME")
    parser.add_argument("--channels", type=int, choices=CHANNELS, default=None,
                        help="decode folder: images to 1 (greyscale) or 3 (RGB) channels "
                             "(default: 3 when any image of the folder has colour, else 1)")
    parser.add_argument("--skip-bad-images", action="store_true",
                        help="folder: data: leave out image files that do not decode, each "
                             "named on stderr and listed in the report (default: refuse them)")
    parser.add_argument("--image-size", type=int_at_least(8), default=None,
                        help="side of the square inputs of folder:/tfds: data (default 224)")
    parser.add_argument("--recipe", choices=list(RECIPES), default="lenet-mnist",
                        help="training preset; each of its values can be overridden below "
                             "(default: %(default)s)")
    parser.add_argument("--output-dir", type=folder_path,
                        default=pathlib.Path("runs/mnist_horq"),
                        help="where model.h5, model.tflite and report.json go (default: %(default)s)")
    parser.add_argument("--seed", type=int_at_least(0, 2**32 - 1), default=0,
                        help="seed of weights, shuffling and augmentation (default: %(default)s)")
    parser.add_argument("--limit-train", type=int_at_least(1), default=None, metavar="N",
                        help="train on N images only (smoke tests)")
    parser.add_argument("--limit-test", type=int_at_least(1), default=None, metavar="N",
                        help="validate on N images only (smoke tests)")
    parser.add_argument("--verify-samples", type=int_at_least(1), default=10000, metavar="N",
                        help="validation images of the parity check, at most (default: %(default)s)")
    add_tolerance_options(parser)
    parser.add_argument("--tensorboard", type=pathlib.Path, default=None, metavar="DIR",
                        help="write TensorBoard logs to DIR")
    parser.add_argument("--no-convert", action="store_true",
                        help="stop after saving model.h5 (no .tflite, no parity check)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a finished run in --output-dir (the old files stay until "
                             "the new run is complete)")
    add_override_options(parser)
    add_scale_out_arguments(parser)
    parser.set_defaults(func=_run, on_interrupt="run the same command to resume")
