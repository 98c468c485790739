"""``horq-keras convert`` and ``horq-keras verify``.

Exit status (:mod:`horq_keras.exit_status`): 0 done (and parity within tolerance), 1
parity outside tolerance (the .tflite is written all the same, the report says by how
much), 2 bad input or a failure before any result (missing or wrong files, unknown
custom objects, an output that is an input, unwritable paths, ...), 3 LCE could not
convert the model; errors are one line on stderr. Every output path is checked
(:func:`horq_keras.files.check_outputs`) before any work.
"""

import argparse
import json

from horq_keras.argtypes import int_at_least, non_negative_number
from horq_keras.converters import TARGETS
from horq_keras.exit_status import CONVERSION_FAILED, EPILOG, OK, PARITY_FAILED, fail

__all__ = ["register"]

_BAD_INPUT = (ValueError, OSError)  # exit status 2


def add_tolerance_options(parser):
    """``--atol`` and ``--rtol`` of the layer-wise parity check (``convert``, ``verify``,
    ``train``)."""
    parser.add_argument("--atol", type=non_negative_number, default=None,
                        help="parity: absolute tolerance of each layer (float 1e-5, int8 1e-2)")
    parser.add_argument("--rtol", type=non_negative_number, default=None,
                        help="parity: tolerance of each layer relative to its max |Keras "
                        "output| (float 1e-5, int8 0.1)")


def _add_common(parser):
    parser.add_argument("--import", dest="imports", action="append", default=[],
                        metavar="MODULE", help="import MODULE first (it registers the model's "
                        "custom layers); repeatable")
    add_tolerance_options(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def register(subparsers):
    """Add the ``convert`` and ``verify`` subcommands."""
    from horq_keras.converters.data_option import SAMPLES_HELP, add_data_options

    convert = subparsers.add_parser(
        "convert", help="convert a Keras model with LCE and report what was done",
        description="Convert a trained horq_keras / larq model to a .tflite with Larq Compute "
                    "Engine: k-bit activations become binary bit planes, HORQ layers K "
                    "LceBconv2d ops. Prints the report (ops, MACs, size, parity, layers that "
                    "stayed float and why).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    convert.add_argument("model", metavar="MODEL", help="saved Keras model (.keras, .h5, "
                         "SavedModel directory)")
    convert.add_argument("-o", "--output", required=True, metavar="OUT.tflite",
                         help="the .tflite to write (atomically)")
    convert.add_argument("--report", metavar="REPORT.json", help="also save the report as JSON")
    convert.add_argument("--verify", type=int_at_least(0), default=None, metavar="N",
                         help=f"parity check on {SAMPLES_HELP}; 0: no check")
    add_data_options(convert)
    convert.add_argument("--target", choices=TARGETS, default="arm")
    convert.add_argument("--int8", action="store_true",
                         help="int8 first/last layers (the model must be QAT-prepared)")
    convert.add_argument("--no-kbit", dest="kbit", action="store_false",
                         help="do not rewrite k-bit activations into binary bit planes")
    _add_common(convert)
    convert.set_defaults(func=run_convert)

    verify = subparsers.add_parser(
        "verify", help="parity of a .tflite with its Keras model",
        description="Run a Keras model and its converted .tflite (in a separate process) on "
                    "the same inputs and compare the outputs.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("model", metavar="MODEL", help="saved Keras model")
    verify.add_argument("tflite", metavar="MODEL.tflite", help="its converted model")
    verify.add_argument("--samples", type=int_at_least(1), default=None, metavar="N",
                        help=SAMPLES_HELP)
    add_data_options(verify)
    verify.add_argument("--report", metavar="PARITY.json", help="save the result as JSON")
    _add_common(verify)
    verify.set_defaults(func=run_verify)


def _data_inputs(args):
    """The files ``--data`` and ``--labels`` read (an output must not overwrite them)."""
    data = args.data.location if args.data is not None and args.data.kind == "npy" else None
    return {"--data": data, "--labels": args.labels}


def _classes(output_shape):
    """The class count of a classifier's ``(batch, classes)`` output, else None."""
    return int(output_shape[-1]) if len(output_shape) == 2 and output_shape[-1] else None


def run_convert(args):
    """Run ``horq-keras convert``; see the module docstring for the exit status."""
    from horq_keras.converters.conversion import ConversionError, convert
    from horq_keras.converters.data_option import data_from_options
    from horq_keras.converters.loading import import_modules, load_model
    from horq_keras.files import check_outputs

    try:
        check_outputs({"--output": args.output, "--report": args.report},
                      {"MODEL": args.model, **_data_inputs(args)})
        import_modules(args.imports)
        model = load_model(args.model)
        data = (False if args.verify == 0 else
                data_from_options(args.data, args.labels, args.verify, data_dir=args.data_dir,
                                  input_shape=tuple(model.input_shape[1:]),
                                  num_classes=_classes(model.output_shape)))
        report = convert(
            model, args.output, target=args.target, int8=args.int8,
            verify_data=data, atol=args.atol, rtol=args.rtol, kbit=args.kbit,
            progress=not args.quiet,
        )
    except _BAD_INPUT as error:
        return fail("convert", error)
    except ConversionError as error:
        return fail("convert", error, CONVERSION_FAILED)
    print(report)
    if args.report:
        report.save_json(args.report)
    return OK if report.parity is None or report.parity.ok else PARITY_FAILED


def run_verify(args):
    """Run ``horq-keras verify``; see the module docstring for the exit status."""
    from horq_keras.converters.data_option import data_from_options
    from horq_keras.converters.loading import import_modules
    from horq_keras.converters.verification import verify
    from horq_keras.files import atomic_write_text, check_outputs
    from horq_keras.tflite.check import read_tflite

    try:
        check_outputs({"--report": args.report},
                      {"MODEL": args.model, "MODEL.tflite": args.tflite, **_data_inputs(args)})
        import_modules(args.imports)
        _, graph = read_tflite(args.tflite, argument="tflite")
        data = data_from_options(args.data, args.labels, args.samples, data_dir=args.data_dir,
                                 input_shape=tuple(graph.inputs[0].shape[1:]),
                                 num_classes=_classes(graph.outputs[0].shape))
        result = verify(args.model, args.tflite, data=data, atol=args.atol,
                        rtol=args.rtol, progress=not args.quiet)
    except _BAD_INPUT as error:
        return fail("verify", error)
    print(f"parity of {args.tflite} with {args.model}: {result}")
    if args.report:
        atomic_write_text(args.report, json.dumps(result.to_dict(), indent=2) + "\n")
    return OK if result.ok else PARITY_FAILED
