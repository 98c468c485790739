"""Group-Net's MNIST study re-run through ``horq-keras train``, 3 seeds, mean ± std.

The configurations of ``benchmarks/groupnet_mnist.py`` (1, 3 and 5 bases; W1A1 and
W1A2; layer-wise vs group-wise v1 decomposition), each trained by the trainer itself —
``horq-keras train --model groupnet_resnet18 --model-arg num_bases=K --model-arg
activation_bits=B --model-arg partition=P --model-arg stage_filters=...`` on the full
MNIST training set — for ``--epochs`` epochs (a budget where W1A1 converges, unlike
the 250 steps of the one-seed study), with ``--seeds`` seeds each. Every run ends with
the trainer's LCE conversion and parity check unless ``--no-convert``; the test
accuracy is the trainer's Keras accuracy on the 10,000 test images. The paper's trends
(more bases -> better; group-wise >= layer-wise) are checked on the seed means.

Command and budget: ``nice -n 10 python benchmarks/groupnet_mnist_trainer.py`` trains
10 configurations x 3 seeds = 30 networks of 4 epochs (ResNet-18 layout, widths
8-16-32-64, 28x28): several hours on this 2-core x86 machine — a run for a quiet
machine or CI, not for a test. ``--smoke`` (W1A1, bases 1-2, one seed, 64 images, no
conversion: the trainer's conversion has its own tests) checks the script in a minute. Results:
``benchmarks/results/groupnet_mnist_trainer.{md,json,png}``.
"""

# horq_keras first: it selects Keras 2 for tf.keras before TensorFlow is imported.
import horq_keras  # noqa: F401, I001
import json
import statistics
import tempfile

from _results import base_parser, command_line, markdown_table, parse_smoke_args, write_results
from groupnet_mnist import DECOMPOSITIONS, run_plan, trend_checks

from horq_keras.cli import main as horq_keras_main

NAME = "groupnet_mnist_trainer"


def parse_args(argv):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--bases", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--activation-bits", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--stage-filters", default="8,16,32,64")
    parser.add_argument("--limit-train", type=int, default=None)
    parser.add_argument("--limit-test", type=int, default=None)
    parser.add_argument("--no-convert", action="store_true",
                        help="skip the trainer's LCE conversion and parity check")
    return parse_smoke_args(parser, argv, {
        "epochs": 1, "seeds": [0], "bases": [1, 2], "activation_bits": [1],
        "stage_filters": "4,4,8,8", "limit_train": 64, "limit_test": 32, "no_convert": True})


def train_run(partition, bases, bits, seed, args, workdir):
    """One ``horq-keras train`` run; returns its report."""
    out = f"{workdir}/{partition}_k{bases}_a{bits}_s{seed}"
    argv = ["train", "--model", "groupnet_resnet18", "--model-arg", f"num_bases={bases}",
            "--model-arg", f"activation_bits={bits}", "--model-arg", f"partition={partition}",
            "--model-arg", f"stage_filters={args.stage_filters}", "--epochs", str(args.epochs),
            "--seed", str(seed), "--output-dir", out]
    for option in ("limit_train", "limit_test"):
        if getattr(args, option) is not None:
            argv += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    if args.no_convert:
        argv.append("--no-convert")
    code = horq_keras_main(argv)
    if code not in (0, 1):
        raise SystemExit(f"horq-keras train failed with exit code {code}: {' '.join(argv)}")
    with open(f"{out}/report.json") as handle:
        return json.load(handle)


def plot(runs, args):
    """Mean test accuracy ± std against K, one panel per activation width."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bits_list = list(args.activation_bits)
    figure, axes = plt.subplots(1, len(bits_list), figsize=(5 * len(bits_list), 4),
                                squeeze=False)
    for axis, bits in zip(axes[0], bits_list):
        for label in ("direct", *DECOMPOSITIONS):
            points = [run for run in runs if run["activation_bits"] == bits
                      and (run["decomposition"] == label
                           or (run["bases"] == 1 and label != "direct"))]
            points.sort(key=lambda run: run["bases"])
            if label == "direct" or not points:
                continue
            axis.errorbar([r["bases"] for r in points],
                          [100 * r["test_accuracy"] for r in points],
                          yerr=[100 * r["std"] for r in points], marker="o", capsize=3,
                          label=label)
        axis.set(title=f"W1A{bits}", xlabel="bases K", ylabel="test accuracy % (mean ± std)")
        axis.legend()
    figure.tight_layout()
    return figure


def main(argv=None):
    args = parse_args(argv)
    command = command_line("groupnet_mnist_trainer.py", argv)
    runs = []
    with tempfile.TemporaryDirectory() as workdir:
        for label, partition, bases, bits in run_plan(args):
            accuracies, seconds = [], 0.0
            for seed in args.seeds:
                report = train_run(partition, bases, bits, seed, args, workdir)
                accuracies.append(report["keras_test_accuracy"])
                seconds += report["train_seconds"]
            runs.append({"decomposition": label, "partition": partition, "bases": bases,
                         "activation_bits": bits, "accuracies": accuracies,
                         "test_accuracy": statistics.mean(accuracies),
                         "std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
                         "train_seconds": seconds})
    checks = trend_checks(runs, args)
    rows = [[f"W1A{run['activation_bits']}", run["bases"], run["decomposition"],
             f"{100 * run['test_accuracy']:.2f} ± {100 * run['std']:.2f}",
             " ".join(f"{100 * a:.2f}" for a in run["accuracies"]),
             f"{run['train_seconds'] / 60:.1f}"] for run in runs]
    table = markdown_table(["Bits", "Bases K", "Decomposition", "Test acc. % (mean ± std)",
                            "per seed", "train min"], rows)
    held = sum(holds for _, holds in checks)
    verdicts = "\n".join(f"- {'✓' if holds else '✗'} {text}" for text, holds in checks)
    markdown = (
        "# Group-Net on MNIST through `horq-keras train`, mean ± std over seeds\n\n"
        f"`groupnet_resnet18` with stage_filters ({args.stage_filters}), {args.epochs} "
        f"epochs of the lenet-mnist recipe (Adam 2e-3, cosine), seeds {args.seeds}; "
        f"decompositions {', '.join(DECOMPOSITIONS)}; K = 1 is direct binarization.\n\n"
        f"{table}\n## Trends on the seed means ({held} of {len(checks)} hold)\n\n{verdicts}\n")
    for path in write_results(args.output_dir, NAME, command=command, markdown=markdown,
                              data={"runs": runs, "checks": checks},
                              figure=plot(runs, args)):
        print(path)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
