"""Options of ``horq-keras train``; the job itself is :func:`horq_keras.train.run`.

Only argparse and plain checks here: TensorFlow loads when the command runs, not when
the parser is built (``horq-keras --help`` stays instant).
"""

import pathlib

from horq_keras._checks import BETA_FORMS
from horq_keras.argtypes import int_at_least, positive_number
from horq_keras.training.cluster import add_arguments as add_scale_out_arguments

__all__ = ["register"]


def _run(args):
    from horq_keras.train import run

    return run(args)


def register(subparsers):
    """Add the ``train`` subcommand to the ``horq-keras`` parser."""
    parser = subparsers.add_parser(
        "train",
        help="train the HORQ LeNet on MNIST, convert it with LCE and verify the .tflite",
        description="Train the HORQ LeNet on MNIST, convert it with Larq Compute Engine, "
                    "and check the .tflite against Keras on the test set.",
        epilog="An interrupted run resumes from its last finished epoch when the same "
               "command is run again.",
    )
    parser.add_argument("--order", type=int_at_least(1), default=2,
                        help="HORQ order K >= 1; 1 is XNOR-Net (default: %(default)s)")
    parser.add_argument("--beta-form", choices=BETA_FORMS, default="pixel",
                        help="where beta_i is taken; 'column' trains but cannot be converted "
                             "(default: %(default)s)")
    parser.add_argument("--epochs", type=int_at_least(1), default=6,
                        help="(default: %(default)s)")
    parser.add_argument("--batch-size", type=int_at_least(1), default=128,
                        help="(default: %(default)s)")
    parser.add_argument("--learning-rate", type=positive_number, default=2e-3,
                        help="initial Adam learning rate, cosine-decayed to 0 over the run "
                             "(default: %(default)s)")
    parser.add_argument("--output-dir", type=pathlib.Path, default=pathlib.Path("runs/mnist_horq"),
                        help="where the model, .tflite and report.json go "
                             "(default: %(default)s)")
    parser.add_argument("--seed", type=int_at_least(0), default=0,
                        help="seed of weights and shuffling (default: %(default)s)")
    parser.add_argument("--data-dir", type=pathlib.Path, default=None,
                        help="MNIST IDX directory (default: $HORQ_KERAS_MNIST_DIR, "
                             "then ./data/mnist)")
    parser.add_argument("--limit-train", type=int_at_least(1), default=None, metavar="N",
                        help="train on the first N images only (smoke tests)")
    parser.add_argument("--limit-test", type=int_at_least(1), default=None, metavar="N",
                        help="evaluate on the first N test images only (smoke tests)")
    parser.add_argument("--no-convert", action="store_true",
                        help="stop after saving model.h5 (no .tflite, no parity check)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a finished run (model.h5) in --output-dir")
    add_scale_out_arguments(parser)
    parser.set_defaults(func=_run)
