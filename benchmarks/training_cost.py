"""Training cost: step time of HORQ order 1–3 vs larq's XNOR ``QuantConv2D`` vs float on the
same MNIST LeNet, as ratios measured in one run.

Models (all :func:`horq_keras.models.horq_lenet`'s architecture):

- ``float``: ``horq_lenet(variant="float")``.
- ``larq_xnor``: the same LeNet with larq's own XNOR layer in ``conv2`` and ``fc3``:
  ``lq.layers.QuantConv2D(input_quantizer="ste_sign",
  kernel_quantizer="magnitude_aware_sign", kernel_constraint="weight_clip")`` (binary
  inputs without a beta scale), built by :func:`larq_xnor_lenet`.
- ``horq1`` .. ``horq3``: ``horq_lenet(variant="horq", order=K)`` (``--beta-form``,
  default the deployable pixel form; order 1 is XNOR-Net with its beta scale).

One training step = ``model.train_on_batch`` on one batch of real MNIST (Adam, sparse
categorical cross-entropy): forward, backward and weight update. Every model is warmed
up (graph tracing) first; then repeats are interleaved over the models (each repeat
times ``--steps`` consecutive steps of every model), so load from other processes hits
every model alike. The step time of a model is its best (minimum) repeat, the one least
disturbed by other processes (the median is reported too); ratios are taken against
``larq_xnor``'s.

TensorFlow runs with ``--threads 1`` by default: on a 2-core machine shared with other
processes a two-thread step waits for whichever core is busy, and its time (and the
ratios) then swing by 2x between runs; one thread measures the work of each step.

Command and budget: ``python benchmarks/training_cost.py`` takes about 1 minute on a
2-core x86 CPU; ``--smoke`` runs in seconds. Results:
``benchmarks/results/training_cost.{md,json,png}``.
"""

import functools
import sys
import time

import horq_keras  # noqa: F401  (selects Keras 2 for larq before TensorFlow is used)
import larq as lq
import numpy as np
import tensorflow as tf

from _results import (
    base_parser, command_line, load_note, markdown_table, parse_smoke_args, write_results,
)
from _timing import load_average, time_interleaved
from horq_keras.datasets import load_mnist, scale_images
from horq_keras.models import horq_lenet

NAME = "training_cost"

#: The goal: HORQ order 2's training step at most this many times larq's XNOR step.
GOAL_RATIO = 1.5


def larq_xnor_lenet():
    """``horq_lenet``'s network with larq's XNOR ``QuantConv2D`` in ``conv2`` and ``fc3``.

    Clones the binary-weight LeNet (its quantized layers are ``QuantConv2D`` with
    ``magnitude_aware_sign`` weights and ``weight_clip``) and gives those layers
    ``input_quantizer="ste_sign"``: binary inputs and weights, as larq's XNOR layers.
    """

    def with_binary_inputs(layer):
        config = layer.get_config()
        if isinstance(layer, lq.layers.QuantConv2D):
            config["input_quantizer"] = "ste_sign"
        return layer.__class__.from_config(config)

    base = horq_lenet(variant="binary_weights", name="larq_xnor_lenet")
    return tf.keras.models.clone_model(base, clone_function=with_binary_inputs)


def build_models(args):
    models = {"float": horq_lenet(variant="float"), "larq_xnor": larq_xnor_lenet()}
    for order in args.orders:
        models[f"horq{order}"] = horq_lenet(variant="horq", order=order,
                                            beta_form=args.beta_form)
    for model in models.values():
        model.compile(optimizer=tf.keras.optimizers.Adam(1e-3),
                      loss="sparse_categorical_crossentropy")
    return models


def parse_args(argv):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--beta-form", choices=["pixel", "sample", "column"], default="pixel")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5, help="steps timed per repeat")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model first")
    parser.add_argument("--threads", type=int, default=1,
                        help="TensorFlow intra- and inter-op threads (0: TensorFlow's default, "
                             "all cores); one thread keeps the ratios stable when other "
                             "processes share the cores")
    args = parse_smoke_args(parser, argv, {"orders": [2], "batch_size": 8, "steps": 1,
                                           "repeats": 2, "warmup": 1})
    for name in ("batch_size", "steps", "repeats", "warmup"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.threads < 0:
        parser.error("--threads must be >= 0")
    return args


def set_threads(threads):
    """Use ``threads`` intra- and inter-op threads; return the intra-op count in effect.

    0 keeps TensorFlow's default (0 is returned then). TensorFlow fixes its thread pools
    when it first runs an op, so in a process that already ran TensorFlow (a test) the
    setting cannot change and the count in effect is returned.
    """
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError as error:
            print(f"warning: --threads {threads} not applied: {error}", file=sys.stderr)
    return tf.config.threading.get_intra_op_parallelism_threads()


def measure(models, batch, args):
    """Median step time (s) of every model over interleaved repeats."""
    images, labels = batch

    def steps(model):
        for _ in range(args.steps):
            model.train_on_batch(images, labels)

    for model in models.values():
        for _ in range(args.warmup):
            model.train_on_batch(images, labels)
    samples = time_interleaved({name: functools.partial(steps, model)
                                for name, model in models.items()}, args.repeats, warmup=0)
    samples = {name: np.asarray(values) / args.steps for name, values in samples.items()}
    return {name: {"median_s": float(np.median(values)), "min_s": float(np.min(values)),
                   "q1_s": float(np.percentile(values, 25)),
                   "q3_s": float(np.percentile(values, 75))}
            for name, values in samples.items()}


def goal_verdict(timings):
    if "horq2" not in timings:
        return "Goal not evaluated: the run did not include order 2."
    ratio = timings["horq2"]["min_s"] / timings["larq_xnor"]["min_s"]
    median_ratio = timings["horq2"]["median_s"] / timings["larq_xnor"]["median_s"]
    verdict = "met" if ratio <= GOAL_RATIO else "NOT met"
    return (f"Goal (HORQ-2 step <= {GOAL_RATIO}x larq XNOR step): **{verdict}** — "
            f"measured {ratio:.2f}x (best of repeats; {median_ratio:.2f}x from medians).")


#: What an order-K HORQ layer computes in a training step, per beta form.
WHY = {
    "pixel": "an order-K HORQ layer in pixel form runs K convolutions of its binary bases "
             "with the shared kernel, the residual bases (eq. 16–17) and K receptive-field "
             "means of the beta maps, forward and backward; larq's XNOR layer runs one "
             "convolution and no beta.",
    "sample": "in sample form an order-K HORQ layer trains with one convolution of "
              "sum_i beta_i H_i (equal to its K binary convolutions, which inference and LCE "
              "run), so it adds only the residual bases (eq. 16–17) to larq's XNOR layer.",
    "column": "in column form an order-K HORQ layer unfolds its input into im2col columns "
              "(k_h k_w times the input) and binarizes each column K times; larq's XNOR "
              "layer runs one convolution and no beta.",
}


def render_markdown(args, timings, wall, load_sentence):
    threads = args.threads or "TensorFlow's default (all cores)"
    xnor, flt = timings["larq_xnor"], timings["float"]
    rows = [[name, f"{1e3 * entry['min_s']:.1f}", f"{1e3 * entry['median_s']:.1f}",
             f"{1e3 * entry['q1_s']:.1f}–{1e3 * entry['q3_s']:.1f}",
             f"{entry['min_s'] / xnor['min_s']:.2f}x",
             f"{entry['median_s'] / xnor['median_s']:.2f}x",
             f"{entry['min_s'] / flt['min_s']:.2f}x"]
            for name, entry in timings.items()]
    table = markdown_table(["Model", "Step (ms, best)", "Step (ms, median)",
                            "Interquartile range (ms)", "vs larq XNOR (best)",
                            "vs larq XNOR (medians)", "vs float (best)"], rows)
    return (
        "# Training cost: step time of HORQ vs larq XNOR vs float\n\n"
        f"Network: `horq_lenet` for all rows (`larq_xnor` swaps larq's XNOR `QuantConv2D` "
        f"into `conv2` and `fc3`; HORQ rows use `beta_form=\"{args.beta_form}\"`). One step "
        f"= `train_on_batch` (forward, backward, Adam update) on {args.batch_size} real MNIST "
        f"images, timed as the mean of {args.steps} consecutive steps; {args.repeats} such "
        f"repeats interleaved over the models in one process; TensorFlow threads: {threads}. "
        "The ratios use the best (minimum) repeat of each model: other processes only ever "
        "add time, so the minimum is the least disturbed figure and it varies least between "
        f"runs; medians are shown beside. {load_sentence}\n\n{table}\n"
        f"{goal_verdict(timings)}\n\n"
        f"Why: {WHY[args.beta_form]} The float first and last layers are the same in every "
        "row.\n\n"
        f"Plot: `{NAME}.png`. Wall time of the benchmark: {wall:.0f} s.\n"
    )


def plot(timings):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(timings)
    best = np.array([1e3 * timings[name]["min_s"] for name in names])
    medians = np.array([1e3 * timings[name]["median_s"] for name in names])
    figure, axis = plt.subplots(figsize=(7, 4))
    bars = axis.bar(names, best, color=["gray", "tab:blue"] + ["tab:orange"] * (len(names) - 2),
                    label="best repeat")
    axis.plot(names, medians, "k_", markersize=18, label="median repeat")
    xnor = 1e3 * timings["larq_xnor"]["min_s"]
    for bar, value in zip(bars, best):
        axis.annotate(f"{value / xnor:.2f}x", (bar.get_x() + bar.get_width() / 2, value),
                      ha="center", va="bottom", textcoords="offset points", xytext=(0, 3))
    axis.axhline(GOAL_RATIO * xnor, linestyle=":", color="red",
                 label=f"goal for horq2: {GOAL_RATIO}x larq XNOR")
    axis.set(ylabel="training step (ms)",
             title="Training step time, MNIST LeNet (ratio to larq XNOR, best repeats)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def main(argv=None):
    args = parse_args(argv)
    command = command_line("training_cost.py", argv)
    args.threads = set_threads(args.threads)
    start = time.perf_counter()
    (x_train, y_train), _ = load_mnist()
    batch = (scale_images(x_train[: args.batch_size]), y_train[: args.batch_size])
    tf.keras.utils.set_random_seed(0)
    models = build_models(args)
    with load_average() as load:
        timings = measure(models, batch, args)
    wall = time.perf_counter() - start
    markdown = render_markdown(args, timings, wall, load_note(load))
    print(markdown)
    write_results(
        args.output_dir, NAME, command=command, markdown=markdown,
        data={"settings": {key: value for key, value in vars(args).items()
                           if key != "output_dir"},
              "timings": timings, "goal": goal_verdict(timings), "load_average": load,
              "wall_s": wall},
        figure=plot(timings),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
