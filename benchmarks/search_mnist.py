"""``horq-keras search`` on MNIST: the accuracy–ARM-cost front of HORQ and Group-Net
networks with the Group-Net study's small widths.

The space: Group-Net ResNet-18 (stage widths 8-16-32-64, as in
``groupnet_mnist_trainer.py``) with 1, 3 and 5 bases, W1A1 and W1A2, layer-wise, group-wise
v1 and v2 decompositions (one base: direct binarization, once), and the HORQ paper's MNIST
LeNet with orders 1 to 3 (the HORQ ResNet-18 does not take 28x28 inputs); each run by
``horq-keras train`` (Adam at 5e-3, cosine-decayed, batch 128; accuracy of the converted
model on the 10,000 test images), successive halving on epochs (rungs of 1, 2 and 4 epochs
by default, eta 2, the front kept), the cost of each converted model in aarch64
instructions (the package's cost model fitted by ``arm_cost_model.py``, or the emulator's
cached counts with ``--arm-counts``; with every operator counted, the cost model's error
on each candidate is reported beside them). The runs stay in ``--search-dir``: a rerun
reads them.

Command and budget, measured: ``nice -n 10 python benchmarks/search_mnist.py
--limit-train 12000 --jobs 2 --search-dir DIR`` (17 candidates, 12,000 training images per
epoch, rungs of 1, 2 and 4 epochs: 32 runs) took 88 min on the 2-core machine, run as two
invocations on one folder (``--epochs 2``: 26 runs in 67 min; then ``--epochs 4``: the 6
runs of the last rung in 21 min, the others read). Before the last invocation, as root
after ``make arm-setup``, ``python benchmarks/arm_cost_model.py --networks --mnist
--tflite DIR/runs/*/e1/model.tflite --output-dir TMP --model-output TMP/model.json``
counted the candidates' 108 distinct operators on the emulator (38 s), and the search ran
with ``--arm-counts .arm/counts.json --max-cost 1ms``. ``--smoke``: HORQ LeNets of orders 1
and 2 on 64 images, one epoch.
"""

import json
import pathlib
import sys
import tempfile
import time

import horq_keras  # noqa: F401  (selects Keras 2 for larq before TensorFlow is used)
from _results import base_parser, command_line, markdown_table, parse_smoke_args, write_results

from horq_keras.cli import main as horq_keras_main
from horq_keras.search.output import plot, table
from horq_keras.search.pareto import dominates
from horq_keras.tflite.arm_cost import DEFAULT_MODEL_PATH, CostModel, model_cost

NAME = "search_mnist"
GROUPNET = ["groupnet_resnet18", "num_bases=1/3/5", "activation_bits=1/2",
            "partition=layerwise/v1/v2", "stage_filters=8,16,32,64"]
HORQ = ["horq_lenet", "order=1/2/3"]


def parse_args(argv):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs of the last rung")
    parser.add_argument("--min-epochs", type=int, default=1)
    parser.add_argument("--eta", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=5e-3)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--limit-train", type=int, default=None)
    parser.add_argument("--limit-test", type=int, default=None)
    parser.add_argument("--verify-samples", type=int, default=1000)
    parser.add_argument("--max-cost", default=None, help="as for horq-keras search")
    parser.add_argument("--arm-counts", default=None, help="as for horq-keras search")
    parser.add_argument("--space", nargs="+", action="append", default=None,
                        metavar="MODEL KEY=V1/V2",
                        help="as for horq-keras search (default: the Group-Net and HORQ "
                             "spaces above)")
    parser.add_argument("--search-dir", default=None,
                        help="the search's folder, kept (default: a temporary one)")
    parser.add_argument("--name", default=NAME)
    args = parse_smoke_args(parser, argv, {
        "epochs": 1, "limit_train": 64, "limit_test": 32, "verify_samples": 32})
    if args.space is None:
        args.space = [["horq_lenet", "order=1/2"]] if args.smoke else [GROUPNET, HORQ]
    return args


def search_argv(args, folder):
    argv = ["search"]
    for space in args.space:
        argv += ["--space", *space]
    argv += ["--output-dir", str(folder), "--epochs", str(args.epochs), "--min-epochs",
             str(args.min_epochs), "--eta", str(args.eta), "--learning-rate",
             str(args.learning_rate), "--jobs", str(args.jobs), "--verify-samples",
             str(args.verify_samples)]
    for option in ("limit_train", "limit_test", "max_cost", "arm_counts"):
        if getattr(args, option) is not None:
            argv += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    return argv


def never_worth_it(final):
    """The candidates of the last rung that another one dominates, with one that does."""
    return [(p, next(q for q in final if dominates(q, p))) for p in final
            if p.get("accuracy") is not None and any(dominates(q, p) for q in final)]


def cost_model_errors(points):
    """Per point whose every operator was counted on the emulator: ``(point, predicted
    instructions, relative error)`` of the package's cost model alone."""
    cost_model = CostModel.load(DEFAULT_MODEL_PATH)
    rows = []
    for point in points:
        if point.get("tflite") and point.get("measured_share") == 1.0:
            predicted = model_cost(pathlib.Path(point["tflite"]).read_bytes(),
                                   cost_model=cost_model).instructions
            rows.append((point, predicted, predicted / point["instructions"] - 1.0))
    return rows


def cost_model_section(errors):
    """Markdown: the cost model's prediction against the counts, per candidate."""
    heading = "\n## The cost model against the emulator\n\n"
    if not errors:
        return (heading + "No candidate was counted in full (run with `--arm-counts` after "
                "counting them).\n")
    relative = [abs(e) for *_, e in errors]
    rows = [[p["label"], f"{p['instructions'] / 1e6:,.3f}", f"{predicted / 1e6:,.3f}",
             f"{100 * error:+.1f} %"] for p, predicted, error in errors]
    return (heading + "The package's fitted cost model alone against the emulator's counts "
            "of the same converted models (each candidate at the last rung it reached): "
            f"**mean |error| {100 * sum(relative) / len(relative):.1f} %, max "
            f"{100 * max(relative):.1f} %** over {len(errors)} candidates.\n\n"
            + markdown_table(["candidate", "counted (M)", "predicted (M)", "error"], rows))


def main(argv=None):
    args = parse_args(argv)
    command = command_line("search_mnist.py", argv)
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as temporary:
        folder = pathlib.Path(args.search_dir or pathlib.Path(temporary) / "search")
        code = horq_keras_main(search_argv(args, folder))
        if code not in (0, 2) or not (folder / "frontier.json").exists():
            raise SystemExit(f"horq-keras search failed with exit code {code}")
        data = json.loads((folder / "frontier.json").read_text())
    history, front, chosen = data["rungs_points"], data["front"], data["chosen"]
    final = history[-1]
    front_keys = {p["key"] for p in front}
    front = [p for p in final if p["key"] in front_keys]  # the same objects as the rows'
    chosen = next((p for p in final if chosen and p["key"] == chosen["key"]), None)
    dominated = never_worth_it(final)
    rows = [[p["label"], f"{100 * p['accuracy']:.2f}", f"{p['instructions'] / 1e6:,.2f}",
             q["label"], f"{100 * q['accuracy']:.2f}", f"{q['instructions'] / 1e6:,.2f}"]
            for p, q in dominated]
    latest = {p["key"]: p for points in history for p in points}  # each at its last rung
    errors = cost_model_errors(list(latest.values()))
    wall = time.monotonic() - began
    markdown = (
        "# Accuracy vs ARM cost on MNIST: `horq-keras search`\n\n"
        f"Rungs of {', '.join(map(str, data['rungs']))} epoch(s), eta {data['eta']}, "
        f"{data['candidates']} candidates, {data['trained']} runs trained by this invocation "
        f"(the others read from the search folder). Accuracy: the converted model on "
        f"{final[0].get('val_samples') or '?'} test images. Cost: millions of aarch64 "
        "instructions per inference (emulated Cortex-A72; 'counted' is the share of them "
        "counted on the emulator, the rest predicted by the fitted cost model), estimated "
        f"Raspberry Pi 4B ms at {data['instructions_per_second'] / 1e9:.2f} G instructions/s.\n\n"
        + table(history, front, chosen)
        + "\n## Never worth it on ARM (dominated at the last rung)\n\n"
        + (markdown_table(["candidate", "accuracy %", "M instr.", "dominated by",
                           "accuracy %", "M instr."], rows) if rows else "None.\n")
        + cost_model_section(errors)
        + f"\nWall time of this invocation: {wall / 60:.1f} min.\n")
    print(markdown)
    write_results(args.output_dir, args.name, command=command, markdown=markdown,
                  data={**data, "never_worth_it": [[p["key"], q["key"]] for p, q in dominated],
                        "cost_model_errors": [{"key": p["key"], "counted": p["instructions"],
                                               "predicted": predicted, "relative_error": error}
                                              for p, predicted, error in errors],
                        "wall_s": wall},
                  figure=plot(history, front, chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
