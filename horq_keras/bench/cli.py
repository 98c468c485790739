"""``horq-keras bench``: latency of a converted model on this machine, a board or a phone.

Exit status (:mod:`horq_keras.exit_status`): 0 done, 2 bad input or a failure before any
result (a bad option or file, an output that is an input, a target or runner that
fails); errors are one line on stderr. ``--json`` and ``--plot`` are checked before any
work and written atomically.
"""

import argparse

from horq_keras.argtypes import int_at_least, positive_number
from horq_keras.bench.timing import BINARY_NAME, Settings, benchmark
from horq_keras.bench.report import format_summary, write_json, write_plot
from horq_keras.bench.targets import TARGET_FORMS, BenchError, TargetOptions, parse_target
from horq_keras.exit_status import EPILOG, OK, fail
from horq_keras.files import check_outputs

__all__ = ["register", "run"]

_EPILOG = f"""\
targets: {', '.join(TARGET_FORMS)}
  local   this machine, LCE's Python interpreter (x86 or ARM; LCE's fast ARM kernels
          need an aarch64 build of {BINARY_NAME} or LCE)
  ssh     copies the models to a board and runs the Python runner there (--remote-python,
          needs NumPy and larq-compute-engine or tflite-runtime), or LCE's {BINARY_NAME}
          when --benchmark-binary names it on the board. Keys only (--identity or
          ssh-agent); the board's host key must be in known_hosts.
  adb     pushes the models and {BINARY_NAME} (--benchmark-binary, a local file) to
          the phone's /data/local/tmp and runs it there.
examples:
  horq-keras bench horq.tflite --baseline float.tflite --runs 100 --json bench.json
  horq-keras bench horq.tflite --target ssh://pi@raspberrypi.local \\
      --benchmark-binary /home/pi/{BINARY_NAME} --threads 4 --plot bench.png
"""


def _target(text):
    try:
        parse_target(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def register(subparsers):
    """Add the ``bench`` subcommand."""
    parser = subparsers.add_parser(
        "bench", help="measure a converted model's latency (local, ssh board, adb phone)",
        description="Latency (min/median/max) of a converted .tflite model, its ratio to a "
                    "float baseline measured in the same session, per-operator times where "
                    "the runner gives them, and the machine it ran on.",
        epilog=_EPILOG + EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL.tflite", help="converted model to time")
    parser.add_argument("--baseline", metavar="FLOAT.tflite",
                        help="float model timed in the same session, for the speed-up ratio")
    parser.add_argument("--threads", type=int_at_least(1), default=1, help="interpreter threads (1)")
    parser.add_argument("--runs", type=int_at_least(1), default=50, help="timed runs per model (50)")
    parser.add_argument("--warmup", type=int_at_least(1), default=5,
                        help="untimed runs before timing, the first reported separately (5)")
    parser.add_argument("--target", type=_target, default="local",
                        help="local (default), ssh://[user@]host[:port], adb or adb:SERIAL")
    parser.add_argument("--json", metavar="OUT.json", help="write the full result as JSON")
    parser.add_argument("--plot", metavar="OUT.png", help="plot latencies and operator times")

    lce = parser.add_argument_group("LCE interpreter flags")
    lce.add_argument("--xnnpack", action=argparse.BooleanOptionalAction, default=True,
                     help="XNNPACK delegate for float operators (on)")
    lce.add_argument("--indirect-bgemm", action=argparse.BooleanOptionalAction, default=True,
                     help="LCE's indirect BGEMM binary convolution kernels (on)")
    lce.add_argument("--reference-bconv", action=argparse.BooleanOptionalAction, default=False,
                     help="LCE's slow reference binary convolution, for checking (off)")
    lce.add_argument("--op-profiling", action=argparse.BooleanOptionalAction, default=True,
                     help=f"per-operator times ({BINARY_NAME} only; on)")

    remote = parser.add_argument_group("runner and connection")
    remote.add_argument("--benchmark-binary", metavar="PATH",
                        help=f"use LCE's {BINARY_NAME}: its path on the ssh board, or the local "
                             "file to push for adb / to run locally")
    remote.add_argument("--remote-python", default="python3",
                        help="Python on the ssh board that runs the runner (python3)")
    remote.add_argument("--identity", metavar="KEYFILE",
                        help="ssh private key file (path only; passphrase keys need ssh-agent)")
    remote.add_argument("--ssh-option", action="append", default=[], metavar="KEY=VALUE",
                        help="extra ssh -o option, repeatable (e.g. UserKnownHostsFile=FILE)")
    remote.add_argument("--connect-timeout", type=int_at_least(1), default=10,
                        help="ssh connect timeout, seconds (10)")
    remote.add_argument("--timeout", type=positive_number, default=300.0,
                        help="limit of every copy or run command, seconds (300)")
    remote.add_argument("--device-dir", default="/data/local/tmp",
                        help="working directory on the adb device (/data/local/tmp)")
    parser.set_defaults(func=run)


def run(args):
    """Run ``horq-keras bench``; see the module docstring for the exit status."""
    try:
        check_outputs({"--json": args.json, "--plot": args.plot},
                      {"MODEL.tflite": args.model, "--baseline": args.baseline,
                       "--benchmark-binary": args.benchmark_binary,
                       "--identity": args.identity})
        settings = Settings(
            threads=args.threads, runs=args.runs, warmup=args.warmup,
            use_xnnpack=args.xnnpack, use_indirect_bgemm=args.indirect_bgemm,
            use_reference_bconv=args.reference_bconv, op_profiling=args.op_profiling,
        )
        options = TargetOptions(
            timeout=args.timeout, connect_timeout=args.connect_timeout, identity=args.identity,
            ssh_options=tuple(args.ssh_option), remote_python=args.remote_python,
            device_dir=args.device_dir,
        )
        result = benchmark(args.model, args.baseline, target=args.target, settings=settings,
                           options=options, benchmark_binary=args.benchmark_binary)
    except (ValueError, OSError, BenchError) as error:
        return fail("bench", error)
    print(format_summary(result))
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    if args.plot:
        write_plot(args.plot, result)
        print(f"wrote {args.plot}")
    return OK
