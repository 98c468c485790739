"""Training memory: peak resident memory of a Group-Net ResNet-18 training step with
K = 1, 2, 3, 5 bases, with and without recomputation of the branches, the step time
each costs, and the trainer's pre-flight estimate beside each measurement.

Every configuration runs in a fresh child process (this script with ``--child``): it
builds the model through the trainer's registry (``groupnet_resnet18`` with
``num_bases=K``, ``stage_filters=--widths`` and ``recompute_branches``), compiles it
with Adam and sparse categorical cross-entropy as ``horq-keras train`` does, and runs
``1 + --steps`` ``train_on_batch`` steps on ``--batch-size`` random images of
``--image-size``. It reports its resident memory before the first step (``/proc/self/
statm``: TensorFlow, the model, its weights) and its peak (``getrusage``'s
``ru_maxrss``): the peak less the resident memory before training is what the step
(graph tracing included) costs. The step time is the median of the timed steps (the
first, which traces the graph, is reported apart), as wall time and as the CPU time of
the process (``time.process_time``): on a machine shared with other processes the wall
time of a step swings with their load, its CPU time (one TensorFlow thread) much less,
so the cost of recomputation is read from the CPU times. Configurations run in the order K,
then without and with recomputation, so both variants of one K see the same machine
load; the ratio of their step times is taken in the same run.

The estimate is :func:`horq_keras.training.memory.footprint`'s ``bytes(batch)``: 4
bytes x (4 x parameters + 2 x batch x the layer outputs a step holds), which counts,
with recomputation, the outputs outside the branches, each branch's output and the
largest branch (:func:`horq_keras.groupnet.recompute.kept_activations`).

Command and budget: ``nice -n 5 python benchmarks/training_memory.py`` takes about 20 minutes on
a 2-core x86 CPU shared with other processes (graph tracing of the K = 5 models takes
most of it) and at most ~4.1 GB per child; ``--smoke`` runs in about two minutes.
Results: ``benchmarks/results/training_memory.{md,json,png}``.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

from _results import base_parser, command_line, markdown_table, parse_smoke_args, write_results
from _timing import load_average

NAME = "training_memory"
MODEL = "groupnet_resnet18"


def parse_args(argv):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--bases", type=int, nargs="+", default=[1, 2, 3, 5])
    parser.add_argument("--widths", type=int, nargs=4, default=[32, 64, 128, 256],
                        help="stage_filters of the ResNet-18 (the paper's: 64 128 256 512)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="timed steps after the first")
    parser.add_argument("--threads", type=int, default=1,
                        help="TensorFlow intra- and inter-op threads of each child")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one configuration, as JSON
    args = parse_smoke_args(parser, argv, {"bases": [2], "widths": [4, 4, 8, 8],
                                           "image_size": 16, "batch_size": 8, "steps": 1})
    for name in ("image_size", "batch_size", "steps", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if min(args.bases) < 1 or min(args.widths) < 1:
        parser.error("--bases and --widths must be >= 1")
    return args


def _resident_bytes():
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def run_child(config):
    """Measure one configuration in this process; print one JSON line."""
    import functools

    import horq_keras  # noqa: F401  (selects Keras 2 for larq before TensorFlow is used)
    import numpy as np
    import tensorflow as tf

    from horq_keras.training import memory, registry

    tf.config.threading.set_intra_op_parallelism_threads(config["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(config["threads"])
    size, batch = config["image_size"], config["batch_size"]
    build = functools.partial(
        registry.build, MODEL, {"num_bases": config["bases"],
                                "stage_filters": tuple(config["widths"]),
                                "recompute_branches": config["recompute"]},
        input_shape=(size, size, 3), num_classes=10)
    estimate = memory.footprint(build)
    model = build()
    model.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    images = rng.random((batch, size, size, 3), dtype=np.float32)
    labels = rng.integers(0, 10, batch)
    before = _resident_bytes()
    times, cpu_times = [], []
    for _ in range(1 + config["steps"]):
        start, cpu_start = time.perf_counter(), time.process_time()
        model.train_on_batch(images, labels)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({**config, "resident_before_bytes": before, "peak_bytes": peak,
                      "step_bytes": peak - before, "estimate_bytes": estimate.bytes(batch),
                      "parameters": estimate.parameters,
                      "activations_per_image": estimate.activations,
                      "first_step_s": times[0], "step_s": statistics.median(times[1:]),
                      "step_cpu_s": statistics.median(cpu_times[1:])}))


def measure(args):
    rows = []
    for bases in args.bases:
        for recompute in (False, True):
            config = {"bases": bases, "recompute": recompute, "widths": args.widths,
                      "image_size": args.image_size, "batch_size": args.batch_size,
                      "steps": args.steps, "threads": args.threads}
            result = subprocess.run([sys.executable, __file__, "--child", json.dumps(config)],
                                    capture_output=True, text=True, check=False)
            if result.returncode:
                raise RuntimeError(f"configuration {config} failed:\n{result.stderr[-3000:]}")
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
            print(f"K={bases} recompute={recompute}: peak {rows[-1]['peak_bytes'] / 1e9:.2f} "
                  f"GB, step {rows[-1]['step_cpu_s']:.2f} s CPU", file=sys.stderr, flush=True)
    return rows


def _gb(count):
    return f"{count / 1e9:.2f}"


def pairs(rows):
    """``{K: (without, with)}`` recomputation."""
    found = {}
    for row in rows:
        found.setdefault(row["bases"], [None, None])[row["recompute"]] = row
    return found


def render_markdown(args, rows, wall, load):
    table = []
    for bases, (plain, recomputed) in pairs(rows).items():
        for row in (plain, recomputed):
            table.append([bases, "yes" if row["recompute"] else "no",
                          _gb(row["resident_before_bytes"]), _gb(row["peak_bytes"]),
                          _gb(row["step_bytes"]), _gb(row["estimate_bytes"]),
                          f"{row['step_cpu_s']:.2f}", f"{row['step_s']:.2f}",
                          f"{row['first_step_s']:.0f}"])
        table.append([bases, "ratio with / without", "", "",
                      f"{recomputed['step_bytes'] / plain['step_bytes']:.2f}",
                      f"{recomputed['estimate_bytes'] / plain['estimate_bytes']:.2f}",
                      f"{recomputed['step_cpu_s'] / plain['step_cpu_s']:.2f}",
                      f"{recomputed['step_s'] / plain['step_s']:.2f}", ""])
    widths = ", ".join(map(str, args.widths))
    return (
        "# Training memory: Group-Net ResNet-18 with and without recomputed branches\n\n"
        f"Model: `{MODEL}` (partition v1, W1A1) with `stage_filters=({widths})`, "
        f"{args.image_size}x{args.image_size}x3 inputs, 10 classes; batch "
        f"{args.batch_size}; Adam. One fresh process per row; TensorFlow threads: "
        f"{args.threads}. *Resident before*: the process after building and compiling "
        "the model, before the first step. *Peak*: `ru_maxrss` after "
        f"1 + {args.steps} steps. *Step*: peak less resident before (what training adds: "
        "activations, gradients, optimizer slots, graph tracing). *Estimate*: the "
        "trainer's pre-flight estimate for this batch. Step CPU and wall time: medians of the "
        "steps after the first (CPU time: the process's, the figure to compare); *first "
        "step*: the one that traces the graph (wall). "
        f"1-minute load average {load['before'][0]:.1f} before, {load['after'][0]:.1f} "
        "after.\n\n"
        + markdown_table(["K", "recomputed", "resident before (GB)", "peak (GB)",
                          "step (GB)", "estimate (GB)", "step CPU (s)", "step wall (s)",
                          "first step (s)"],
                         table)
        + f"\nPlot: `{NAME}.png`. Wall time of the benchmark: {wall:.0f} s.\n"
    )


def plot(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = pairs(rows)
    bases = list(found)
    figure, (memory_axis, time_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for index, label in enumerate(("stored activations", "recomputed branches")):
        memory_axis.plot(bases, [found[k][index]["step_bytes"] / 1e9 for k in bases], "o-",
                         label=f"{label}: measured")
        memory_axis.plot(bases, [found[k][index]["estimate_bytes"] / 1e9 for k in bases],
                         "x--", label=f"{label}: estimate")
        time_axis.plot(bases, [found[k][index]["step_cpu_s"] for k in bases], "o-",
                       label=label)
    memory_axis.set(xlabel="bases K", ylabel="GB", title="memory a training step adds")
    time_axis.set(xlabel="bases K", ylabel="CPU s", title="CPU time of a step (median)")
    memory_axis.legend(fontsize=8)
    time_axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        run_child(json.loads(args.child))
        return 0
    start = time.perf_counter()
    with load_average() as load:
        rows = measure(args)
    wall = time.perf_counter() - start
    paths = write_results(args.output_dir, NAME, command=command_line(f"{NAME}.py", argv),
                          markdown=render_markdown(args, rows, wall, load),
                          data={"model": MODEL, "widths": args.widths,
                                "image_size": args.image_size,
                                "batch_size": args.batch_size, "threads": args.threads,
                                "rows": rows, "wall_s": wall, "load_average": load},
                          figure=plot(rows))
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
