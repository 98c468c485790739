"""Group-Net on real MNIST through ``horq-keras train``: 3 seeds, mean ± std.

The trends of Zhuang et al.'s Tables 2–3, checked at a small scale: more binary bases
give higher accuracy, and decomposing whole residual blocks (Group-Net v1, eq. 5) is at
least as good as decomposing every layer alone (layer-wise, eq. 3) with the same number
of bases. Configurations: 1, 3 and 5 bases (one base is direct binarization, where the
two decompositions coincide); W1A1 and W1A2; layer-wise vs group-wise v1. Each is
trained by the trainer itself — ``horq-keras train --model groupnet_resnet18
--model-arg num_bases=K --model-arg activation_bits=B --model-arg partition=P
--model-arg stage_filters=... --learning-rate LR --epochs E`` on the full MNIST training
set — with ``--seeds`` seeds each. The test accuracy is the trainer's own validation
accuracy of the Keras model after its last epoch, on all 10,000 test images
(``history.val_accuracy``); every run also ends with the trainer's LCE conversion and
parity check on ``--verify-samples`` test images (unless ``--no-convert``), whose TFLite
accuracy and top-1 agreement are recorded. The trends are checked on the seed means.

Runs are independent ``horq-keras train`` processes, ``--jobs`` at a time (each in a
fresh interpreter; one already keeps both cores of the 2-core machine busy, so the default
is 1). With ``--work-dir`` the run folders are kept, and a run whose ``report.json``
exists there is read instead of retrained, so an interrupted campaign continues where it
stopped.

Command and budget: ``nice -n 10 python benchmarks/groupnet_mnist_trainer.py --epochs 4
--name groupnet_mnist_trainer_4ep --work-dir benchmarks/results/groupnet_mnist_trainer_4ep_runs``
trains 10 configurations x 3 seeds = 30 networks (ResNet-18 layout, widths 8-16-32-64,
28x28) for 4 epochs each (1,876 Adam steps of batch 128, learning rate 5e-3
cosine-decayed), about 5.5 hours one at a time; with the kept runs of that folder it
trains none and rewrites the result files. ``--smoke`` (W1A1, K = 2 both ways, one seed,
64 images, no conversion: the trainer's conversion has its own tests) checks the script
in a minute. Results: ``benchmarks/results/groupnet_mnist_trainer_4ep.{md,json,png}``.
"""

# horq_keras first: it selects Keras 2 for tf.keras before TensorFlow is imported.
import horq_keras  # noqa: F401, I001
import concurrent.futures
import contextlib
import itertools
import pathlib
import statistics
import tempfile
import time

from horq_keras.argtypes import int_at_least
from horq_keras.search import runs
from _results import base_parser, command_line, markdown_table, parse_smoke_args, write_results

NAME = "groupnet_mnist_trainer"
#: Decompositions compared: label -> ``partition`` argument.
DECOMPOSITIONS = {"layer-wise": "layerwise", "group-wise": "v1"}


def parse_args(argv):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=5e-3,
                        help="Adam's initial learning rate, cosine-decayed to 0")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--bases", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--activation-bits", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--stage-filters", default="8,16,32,64")
    parser.add_argument("--limit-train", type=int, default=None)
    parser.add_argument("--limit-test", type=int, default=None)
    parser.add_argument("--verify-samples", type=int, default=200,
                        help="test images of each run's parity check")
    parser.add_argument("--no-convert", action="store_true",
                        help="skip the trainer's LCE conversion and parity check")
    parser.add_argument("--jobs", type=int_at_least(1), default=1,
                        help="training runs at a time")
    parser.add_argument("--name", default=NAME,
                        help="results file name (for a campaign split by configuration)")
    parser.add_argument("--work-dir", default=None,
                        help="keep the run folders here and reuse finished runs "
                             "(default: a temporary folder)")
    return parse_smoke_args(parser, argv, {
        "epochs": 1, "seeds": [0], "bases": [2], "activation_bits": [1],
        "stage_filters": "4,4,8,8", "limit_train": 64, "limit_test": 32, "no_convert": True,
        "jobs": 2})


def run_plan(args):
    """``(decomposition label, partition, bases, bits)`` of every run, direct runs first."""
    plan = []
    for bits in args.activation_bits:
        for bases in sorted(set(args.bases)):
            if bases == 1:
                plan.append(("direct", "v1", 1, bits))
                continue
            for label, partition in DECOMPOSITIONS.items():
                plan.append((label, partition, bases, bits))
    return plan


def find_run(runs, decomposition, bases, bits):
    for run in runs:
        if run["bases"] == bases and run["activation_bits"] == bits and (
            bases == 1 or run["decomposition"] == decomposition
        ):
            return run
    return None


def trend_checks(runs, args):
    """The paper's two trends as ``(statement, holds)`` pairs, one per comparison."""
    checks = []
    bases = sorted(set(args.bases))
    for bits in args.activation_bits:
        for label in DECOMPOSITIONS:
            accuracies = [find_run(runs, label, k, bits)["test_accuracy"] for k in bases]
            chain = " ≤ ".join(
                f"{100 * accuracy:.2f} (K={k})" for k, accuracy in zip(bases, accuracies))
            holds = all(a <= b for a, b in itertools.pairwise(accuracies))
            checks.append((f"W1A{bits} {label}: more bases → better: {chain}", holds))
        for k in bases:
            if k == 1:
                continue
            layer = find_run(runs, "layer-wise", k, bits)["test_accuracy"]
            group = find_run(runs, "group-wise", k, bits)["test_accuracy"]
            checks.append((
                f"W1A{bits}, K={k}: group-wise {100 * group:.2f} ≥ layer-wise {100 * layer:.2f}",
                group >= layer,
            ))
    return checks


def train_argv(partition, bases, bits, seed, args, out):
    """The ``horq-keras train`` arguments of one run."""
    argv = ["train", "--model", "groupnet_resnet18", "--model-arg", f"num_bases={bases}",
            "--model-arg", f"activation_bits={bits}", "--model-arg", f"partition={partition}",
            "--model-arg", f"stage_filters={args.stage_filters}", "--epochs", str(args.epochs),
            "--learning-rate", str(args.learning_rate), "--seed", str(seed),
            "--verify-samples", str(args.verify_samples), "--output-dir", str(out)]
    for option in ("limit_train", "limit_test"):
        if getattr(args, option) is not None:
            argv += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    if args.no_convert:
        argv.append("--no-convert")
    return argv


def train_run(argv, out):
    """One ``horq-keras train`` process, or the report of a finished one (the search's
    runner, :func:`horq_keras.search.runs.train_run`); a failed run stops the campaign."""
    try:
        return runs.train_run(argv, out)
    except runs.RunFailed as error:
        raise SystemExit(str(error)) from error


def run_campaign(args, workdir):
    """``({(label, partition, bases, bits, seed): report}, runs trained)`` of every run;
    a run whose report is already in ``workdir`` is read, not counted as trained."""
    keys = [(*config, seed) for config in run_plan(args) for seed in args.seeds]
    trained = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {}
        for key in keys:
            _, partition, bases, bits, seed = key
            out = workdir / f"{partition}_k{bases}_a{bits}_s{seed}"
            trained += not (out / "report.json").exists()
            futures[key] = pool.submit(
                train_run, train_argv(partition, bases, bits, seed, args, out), out)
        return {key: future.result() for key, future in futures.items()}, trained


def _parity(report):
    return report.get("conversion", {}).get("parity", {})


def summarize(reports, args):
    """One entry per configuration: accuracies per seed, mean, std, parity figures."""
    runs = []
    for label, partition, bases, bits in run_plan(args):
        seeds = [reports[(label, partition, bases, bits, seed)] for seed in args.seeds]
        accuracies = [report["history"]["val_accuracy"][-1] for report in seeds]
        runs.append({
            "decomposition": label, "partition": partition, "bases": bases,
            "activation_bits": bits, "accuracies": accuracies,
            "test_accuracy": statistics.mean(accuracies),
            "std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
            "train_seconds": sum(report["train_seconds"] for report in seeds),
            "val_accuracy_per_epoch": [report["history"]["val_accuracy"] for report in seeds],
            "tflite_accuracy": [report.get("tflite_test_accuracy") for report in seeds],
            "top1_agreement": [report.get("top1_agreement") for report in seeds],
            "parity_ok": [report.get("parity_ok") for report in seeds],
            # "test_samples" in the reports of earlier versions of the trainer
            "parity_samples": [report.get("parity_samples", report.get("test_samples"))
                               for report in seeds],
            "rounding_floor": [_parity(report).get("rounding_floor") for report in seeds],
            "strict_within": [_parity(report).get("strict_within") for report in seeds],
            "tie_excused": [_parity(report).get("tie_excused") for report in seeds]})
    return runs


def plot(runs, args):
    """Mean test accuracy ± std against K, one panel per activation width."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bits_list = list(args.activation_bits)
    figure, axes = plt.subplots(1, len(bits_list), figsize=(5 * len(bits_list), 4),
                                squeeze=False)
    for axis, bits in zip(axes[0], bits_list):
        for label in DECOMPOSITIONS:  # K = 1 (direct) starts both lines
            points = [run for run in runs if run["activation_bits"] == bits
                      and (run["decomposition"] == label or run["bases"] == 1)]
            points.sort(key=lambda run: run["bases"])
            if not points:
                continue
            axis.errorbar([r["bases"] for r in points],
                          [100 * r["test_accuracy"] for r in points],
                          yerr=[100 * r["std"] for r in points], marker="o", capsize=3,
                          label=label)
        axis.set(title=f"W1A{bits}", xlabel="bases K", ylabel="test accuracy % (mean ± std)")
        axis.legend()
    figure.tight_layout()
    return figure


def _percent(values):
    return " ".join("—" if v is None else f"{100 * v:.1f}" for v in values)


def main(argv=None):
    args = parse_args(argv)
    command = command_line("groupnet_mnist_trainer.py", argv)
    began = time.monotonic()
    if args.work_dir is not None:
        pathlib.Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    with (tempfile.TemporaryDirectory() if args.work_dir is None
          else contextlib.nullcontext(args.work_dir)) as workdir:
        reports, trained_here = run_campaign(args, pathlib.Path(workdir))
    wall = time.monotonic() - began
    runs = summarize(reports, args)
    checks = trend_checks(runs, args)
    rows = [[f"W1A{run['activation_bits']}", run["bases"], run["decomposition"],
             f"{100 * run['test_accuracy']:.2f} ± {100 * run['std']:.2f}",
             " ".join(f"{100 * a:.2f}" for a in run["accuracies"]),
             _percent(run["tflite_accuracy"]), _percent(run["top1_agreement"]),
             f"{run['train_seconds'] / 60:.1f}"] for run in runs]
    table = markdown_table(["Bits", "Bases K", "Decomposition", "Test acc. % (mean ± std)",
                            "per seed", "TFLite acc. % per seed", "top-1 agreement %",
                            "train min"], rows)
    held = sum(holds for _, holds in checks)
    verdicts = "\n".join(f"- {'✓' if holds else '✗'} {text}" for text, holds in checks)
    samples = sorted({n for run in runs for n in run["parity_samples"] if n is not None})
    verified = "no conversion" if args.no_convert or not samples else (
        "TFLite accuracy and top-1 agreement with Keras on the first "
        f"{' or '.join(map(str, samples))} test images (whole batches; per run in the JSON), "
        "from each run's conversion and parity check")
    outcomes = [(run, ok, floor, within, ties) for run in runs for ok, floor, within, ties in
                zip(run["parity_ok"], run["rounding_floor"], run["strict_within"],
                    run["tie_excused"])]
    rescued = [(run, floor, ties) for run, ok, floor, _, ties in outcomes
               if ok and floor is not None]
    failed = [(run, floor, within) for run, ok, floor, within, _ in outcomes if ok is False]
    parity_note = "" if args.no_convert else (
        f"\nParity: {sum(ok is True for _, ok, *_ in outcomes)} of {len(outcomes)} runs "
        f"passed, {len(rescued)} of them only with the rounding floor or threshold ties ("
        + (", ".join(f"floor {f:.2g}" + (f", {t} tie sample(s) excused" if t else "")
                     + f": W1A{run['activation_bits']} K={run['bases']} {run['decomposition']}"
                     for run, f, t in rescued) or "none")
        + f"); {len(failed)} failed ("
        + (", ".join(f"W1A{run['activation_bits']} K={run['bases']} {run['decomposition']}: "
                     f"{100 * w:.1f} % within, floor {f:.2g}" for run, f, w in failed)
           or "none") + ").\n")
    trained = sum(run["train_seconds"] for run in runs)
    markdown = (
        "# Group-Net on MNIST through `horq-keras train`, mean ± std over seeds\n\n"
        f"`groupnet_resnet18` with stage_filters ({args.stage_filters}), {args.epochs} "
        f"epoch(s) of Adam at {args.learning_rate:g} cosine-decayed to 0, batch 128, seeds "
        f"{args.seeds}; decompositions {', '.join(DECOMPOSITIONS)}; K = 1 is direct "
        "binarization. Test accuracy: the Keras model after its last epoch on "
        f"{args.limit_test or 10000} test images; {verified}.\n\n"
        f"{table}\n## Trends on the seed means ({held} of {len(checks)} hold)\n\n{verdicts}\n"
        f"{parity_note}\nTraining time, all runs: {trained / 60:.1f} min (sum of the "
        "training wall times the runs' reports record). This invocation: "
        f"{wall / 60:.1f} min, {trained_here} of {len(reports)} "
        f"runs trained, {args.jobs} at a time; the others were read from --work-dir, "
        "trained earlier under whatever load their machine had then.\n")
    for path in write_results(args.output_dir, args.name, command=command, markdown=markdown,
                              data={"runs": runs, "checks": checks, "wall_seconds": wall},
                              figure=plot(runs, args)):
        print(path)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
