"""Scale-out throughput: 1 worker vs 2 workers of ``MultiWorkerMirroredStrategy`` on this
machine, and the share of a training step spent in the collective all-reduce.

Each configuration starts its workers as real processes on 127.0.0.1 (free ports, one
``TF_CONFIG`` each), through :class:`horq_keras.training.distribute.Distribution` exactly
as ``horq-keras train --strategy multi-worker`` does. Every worker trains the HORQ LeNet
(order 2, pixel β) on real MNIST with ``Model.fit`` at a fixed per-replica batch (global
batch = per-replica × workers) and times every step with a callback; the first
``--warmup`` steps (graph tracing, the collective's set-up) are left out. Then each
worker times the all-reduce alone: one ``strategy.run`` of ``all_reduce(SUM)`` over
tensors shaped like the model's trainable weights (what the gradient all-reduce of one
step moves), repeated ``--steps`` times. Reported per configuration: median step time,
images/s of the whole cluster (global batch / step time), median all-reduce time and its
share of the step.

Expectation on this 2-core machine: no speed-up. Two workers share the same two cores
that one worker already uses, so the compute per image is the same or worse, and the
all-reduce over gRPC on loopback adds to every step. A cluster speeds training up when
each worker brings its own cores or GPUs.

Command and budget: ``python benchmarks/distributed_throughput.py`` takes a few minutes
on a quiet 2-core machine (TensorFlow start-up and the cluster set-up are most of it);
``--smoke`` runs 3 steps per configuration. Results:
``benchmarks/results/distributed_throughput.{md,json,png}``.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from _results import (
    base_parser, command_line, load_note, markdown_table, parse_smoke_args, write_results,
)
from _timing import load_average
from horq_keras.training.local_cluster import loopback_tf_configs

NAME = "distributed_throughput"
WORKER_TIMEOUT = 1500  # seconds per configuration; every process is killed after it


def parse_args(argv):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="cluster sizes to compare (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="per-replica batch (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=40,
                        help="timed steps per configuration (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=5,
                        help="untimed first steps (default: %(default)s)")
    parser.add_argument("--worker", type=pathlib.Path, default=None,
                        help=argparse.SUPPRESS)  # internal: run one worker, write its JSON
    return parse_smoke_args(parser, argv, {"steps": 3, "warmup": 1, "batch_size": 16})


# --- one worker process ----------------------------------------------------------------

def run_worker(args):
    """Train, time steps and the all-reduce; write this worker's figures as JSON."""
    import horq_keras  # noqa: F401  (Keras 2 for larq before TensorFlow is used)
    import tensorflow as tf

    from horq_keras.datasets import load_mnist, mnist_datasets
    from horq_keras.models import horq_lenet
    from horq_keras.training.distribute import Distribution

    distribution = Distribution.create(strategy="multi-worker", batch_size=args.batch_size,
                                       learning_rate=1e-3)
    strategy = distribution.strategy
    steps = args.warmup + args.steps
    data = load_mnist()
    train_set, _ = mnist_datasets(distribution.global_batch, data=data,
                                  limit_train=steps * distribution.global_batch)
    train_set, _ = distribution.shard(train_set, "mnist")
    with strategy.scope():
        model = horq_lenet(order=2)
        model.compile(tf.keras.optimizers.Adam(distribution.learning_rate),
                      "sparse_categorical_crossentropy")

    class StepTimer(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    timer = StepTimer()
    model.fit(train_set, epochs=1, verbose=0, callbacks=[timer])

    shapes = [v.shape for v in model.trainable_variables]

    @tf.function
    def all_reduce():
        def replica_fn():
            context = tf.distribute.get_replica_context()
            return context.all_reduce(tf.distribute.ReduceOp.SUM,
                                      [tf.ones(shape) for shape in shapes])
        return strategy.run(replica_fn)

    reduce_seconds = []
    for _ in range(args.warmup + args.steps):
        start = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), strategy.experimental_local_results(
            all_reduce()))
        reduce_seconds.append(time.perf_counter() - start)
    figures = {
        "rank": distribution.cluster.rank, "replicas": distribution.replicas,
        "global_batch": distribution.global_batch,
        "step_seconds": timer.seconds[args.warmup:],
        "all_reduce_seconds": reduce_seconds[args.warmup:],
        "gradient_values": int(sum(v.shape.num_elements() for v in model.trainable_variables)),
    }
    args.worker.write_text(json.dumps(figures))


# --- the parent: clusters of 1 and 2 workers -------------------------------------------

def run_cluster(workers, argv, workdir):
    """Start ``workers`` processes of this script in worker mode; their figures."""
    processes, outputs = [], []
    try:
        for index, tf_config in enumerate(loopback_tf_configs(workers)):
            outputs.append(workdir / f"w{workers}_{index}.json")
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_CONFIG": tf_config}
            processes.append(subprocess.Popen(
                [sys.executable, __file__, *argv, "--worker", str(outputs[-1])], env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        deadline = time.monotonic() + WORKER_TIMEOUT
        for process in processes:
            _, stderr = process.communicate(timeout=max(1, deadline - time.monotonic()))
            if process.returncode:
                raise RuntimeError(f"a worker of the {workers}-worker cluster failed "
                                   f"(exit {process.returncode}):\n{stderr.decode()[-2000:]}")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return [json.loads(path.read_text()) for path in outputs]


def summarize(workers, figures):
    """Cluster figures: the slowest worker sets the pace of a synchronous step."""
    step = max(statistics.median(f["step_seconds"]) for f in figures)
    reduce = max(statistics.median(f["all_reduce_seconds"]) for f in figures)
    global_batch = figures[0]["global_batch"]
    return {"workers": workers, "replicas": figures[0]["replicas"],
            "global_batch": global_batch, "step_ms": 1000 * step,
            "images_per_s": global_batch / step, "all_reduce_ms": 1000 * reduce,
            "collective_share": reduce / step,
            "gradient_values": figures[0]["gradient_values"]}


def render(args, rows, load_sentence):
    table = markdown_table(
        ["workers", "global batch", "step (ms)", "images/s", "all-reduce (ms)",
         "all-reduce share of step"],
        [[r["workers"], r["global_batch"], f"{r['step_ms']:.1f}", f"{r['images_per_s']:.0f}",
          f"{r['all_reduce_ms']:.2f}", f"{100 * r['collective_share']:.1f} %"] for r in rows])
    base = rows[0]
    ratios = "".join(
        f"- {r['workers']} workers vs {base['workers']}: throughput "
        f"{r['images_per_s'] / base['images_per_s']:.2f}x, step time "
        f"{r['step_ms'] / base['step_ms']:.2f}x.\n" for r in rows[1:])
    return (
        "# Scale-out throughput (MultiWorkerMirroredStrategy on 127.0.0.1)\n\n"
        f"HORQ LeNet (order 2) on MNIST, per-replica batch {args.batch_size}, "
        f"{args.steps} timed steps after {args.warmup} warm-up steps, medians; all-reduce "
        f"of {base['gradient_values']} float32 values (the model's gradients) timed alone. "
        f"Taken on this project's 2-core x86 machine, all workers on the same 2 cores. "
        f"{load_sentence}\n\n{table}\n{ratios}\n"
        "No speed-up is expected here: the workers share the two cores one worker already "
        "uses, and every step adds a gRPC all-reduce over loopback. The all-reduce share "
        "says how much of a step a faster interconnect could win back; a cluster speeds "
        "training up when every worker brings its own cores or GPUs.\n")


def plot(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    labels = [f"{r['workers']} worker(s)" for r in rows]
    left.bar(labels, [r["images_per_s"] for r in rows], color="tab:blue")
    left.set_ylabel("images/s (cluster)")
    compute = [r["step_ms"] - min(r["all_reduce_ms"], r["step_ms"]) for r in rows]
    right.bar(labels, compute, label="rest of the step", color="tab:gray")
    right.bar(labels, [min(r["all_reduce_ms"], r["step_ms"]) for r in rows], bottom=compute,
              label="all-reduce (timed alone)", color="tab:orange")
    right.set_ylabel("step time (ms)")
    right.legend()
    figure.suptitle("MultiWorkerMirroredStrategy on one 2-core x86 machine")
    figure.tight_layout()
    return figure


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.worker is not None:
        run_worker(args)
        return 0
    worker_argv = ["--batch-size", str(args.batch_size), "--steps", str(args.steps),
                   "--warmup", str(args.warmup)]
    rows = []
    with load_average() as load, tempfile.TemporaryDirectory() as workdir:
        for workers in args.workers:
            figures = run_cluster(workers, worker_argv, pathlib.Path(workdir))
            rows.append(summarize(workers, figures))
            print(json.dumps(rows[-1]), flush=True)
    markdown = render(args, rows, load_note(load))
    print(markdown)
    write_results(args.output_dir, NAME, command=command_line(f"{NAME}.py", argv),
                  markdown=markdown, data={"rows": rows, "load_average": load},
                  figure=plot(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
