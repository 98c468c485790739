"""Deployable HORQ (pixel and sample beta forms) vs the paper's exact per-column HORQ on real
MNIST: per-layer output error, and the accuracy of a model trained in one form and
evaluated in another.

``HORQConv2D`` offers three places to take each ``beta_i`` (see its docstring):
``column`` is the paper's exact form (eq. 20–21, one set of bases per im2col column,
not convertible by LCE); ``pixel`` and ``sample`` are deployable (K ``LceBconv2d``).

1. Per-layer error. Two order-2 LeNets (:func:`horq_keras.models.horq_lenet`) are
   trained on real MNIST, one in column form and one in pixel form. For each, the real
   inputs of ``conv2`` and ``fc3`` on ``--samples`` test images are fed to
   ``HORQConv2D`` layers of order 1–4 in every form, all with the trained layer's
   weights; the table gives the relative L2 error ``||y_form - y_column|| /
   ||y_column||`` of the deployable outputs against the column output, and, for
   context, of every form against the float-input convolution with the same binary
   weights (``||y_form - x ⊛ alpha B|| / ||x ⊛ alpha B||``).
2. Cross-form accuracy. Each trained model's weights are copied into the same LeNet
   built with the other beta forms (same layer names and shapes) and evaluated on the
   test images without any retraining or batch-norm recalibration.

Command and budget: ``python benchmarks/beta_forms.py`` trains two order-2 LeNets for
3 epochs each, about 6 minutes on an unloaded 2-core x86 CPU (the committed run took 7
minutes sharing the cores with other jobs, load average about 3; training in column form
is about twice as slow as in pixel form); ``--smoke`` runs in seconds. Results:
``benchmarks/results/beta_forms.{md,json,png}``.
"""

import sys
import time

import horq_keras  # noqa: F401  (selects Keras 2 for larq before TensorFlow is used)
import larq as lq
import numpy as np
import tensorflow as tf

from _results import (
    base_parser, command_line, markdown_table, parse_smoke_args, write_results,
)
from horq_keras.datasets import load_mnist, mnist_datasets, scale_images
from horq_keras.layers import HORQConv2D
from horq_keras.layers.horq import BETA_FORMS
from horq_keras.models import horq_lenet

NAME = "beta_forms"

#: The quantized layers of horq_lenet whose inputs are studied, with the layer feeding them.
LAYERS = {"conv2": "pool1", "fc3": "pool2"}

#: Beta forms a model is trained in (the exact one and the default deployable one).
TRAINED_FORMS = ("column", "pixel")


def parse_args(argv):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--train-order", type=int, default=2, help="order of the trained models")
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2, 3, 4],
                        help="orders of the per-layer comparison")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--samples", type=int, default=2000,
                        help="test images whose activations enter the per-layer comparison")
    parser.add_argument("--limit-train", type=int, default=None)
    parser.add_argument("--limit-test", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parse_smoke_args(parser, argv, {"orders": [1, 2], "epochs": 1, "batch_size": 32,
                                           "samples": 16, "limit_train": 64,
                                           "limit_test": 64})
    for name in ("train_order", "epochs", "batch_size", "samples"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def build(order, beta_form):
    model = horq_lenet(variant="horq", order=order, beta_form=beta_form)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def train(beta_form, data, args):
    """An order-``--train-order`` LeNet trained in ``beta_form`` (Adam, cosine decay)."""
    tf.keras.utils.set_random_seed(args.seed)
    train_set, test_set = mnist_datasets(args.batch_size, data=data,
                                         limit_train=args.limit_train,
                                         limit_test=args.limit_test, seed=args.seed)
    model = build(args.train_order, beta_form)
    steps = args.epochs * int(train_set.cardinality())
    model.compile(
        optimizer=tf.keras.optimizers.Adam(
            tf.keras.optimizers.schedules.CosineDecay(args.learning_rate, steps)),
        loss="sparse_categorical_crossentropy", metrics=["accuracy"],
    )
    start = time.perf_counter()
    history = model.fit(train_set, epochs=args.epochs, validation_data=test_set,
                        verbose=0).history
    print(f"trained {beta_form}: test accuracy {history['val_accuracy'][-1]:.4f} "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
    return model, time.perf_counter() - start


def relative_error(output, reference):
    return float(np.linalg.norm(output - reference) / np.linalg.norm(reference))


def layer_errors(model, images, orders):
    """Relative output errors of every beta form and order on the model's real activations."""
    records = []
    for layer_name, source in LAYERS.items():
        trained = model.get_layer(layer_name)
        inputs = tf.keras.Model(model.input, model.get_layer(source).output)(images)
        with lq.context.quantized_scope(True):
            binary_kernel = tf.convert_to_tensor(trained.kernel)  # alpha * sign(W)
        float_input = tf.nn.convolution(inputs, binary_kernel, padding="VALID").numpy()
        for order in orders:
            outputs = {}
            for beta_form in BETA_FORMS:
                layer = HORQConv2D(trained.filters, trained.kernel_size, order=order,
                                   beta_form=beta_form, padding=trained.padding)
                layer.build(inputs.shape)
                layer.set_weights(trained.get_weights())
                outputs[beta_form] = layer(inputs).numpy()
            for beta_form, output in outputs.items():
                records.append({
                    "layer": layer_name, "order": order, "beta_form": beta_form,
                    "error_vs_column": relative_error(output, outputs["column"]),
                    "error_vs_float_input": relative_error(output, float_input),
                })
    return records


def cross_accuracy(models, test_set, order):
    """Test accuracy of each trained model's weights in every beta form."""
    table = {}
    for trained_form, model in models.items():
        table[trained_form] = {}
        for eval_form in BETA_FORMS:
            target = build(order, eval_form)
            target.set_weights(model.get_weights())
            _, accuracy = target.evaluate(test_set, verbose=0)
            table[trained_form][eval_form] = float(accuracy)
    return table


def _select(records, **fixed):
    return [r for r in records if all(r[key] == value for key, value in fixed.items())]


def render_markdown(args, errors, accuracy, train_wall, wall):
    sections = []
    for trained_form, records in errors.items():
        rows = []
        for layer_name in LAYERS:
            for order in args.orders:
                own = {r["beta_form"]: r for r in _select(records, layer=layer_name, order=order)}
                rows.append([layer_name, order,
                             f"{100 * own['pixel']['error_vs_column']:.2f}",
                             f"{100 * own['sample']['error_vs_column']:.2f}",
                             f"{100 * own['column']['error_vs_float_input']:.2f}",
                             f"{100 * own['pixel']['error_vs_float_input']:.2f}",
                             f"{100 * own['sample']['error_vs_float_input']:.2f}"])
        sections.append(
            f"### Activations of the model trained in {trained_form} form\n\n" + markdown_table(
                ["Layer", "Order", "pixel vs column %", "sample vs column %",
                 "column vs float input %", "pixel vs float input %",
                 "sample vs float input %"], rows))
    accuracy_rows = [[f"trained in {trained}"] + [f"{100 * (1 - acc):.2f}" for acc in
                                                   by_form.values()]
                     for trained, by_form in accuracy.items()]
    accuracy_table = markdown_table(
        [f"Test error % ({args.limit_test or 10000} images)"]
        + [f"evaluated in {form}" for form in BETA_FORMS],
        accuracy_rows)
    return (
        "# Deployable HORQ (pixel, sample) vs exact per-column HORQ on real MNIST\n\n"
        f"Two `horq_lenet` models of order {args.train_order} trained on real MNIST "
        f"({args.epochs} epochs, batch {args.batch_size}, Adam {args.learning_rate} "
        f"cosine-decayed, seed {args.seed}), one in column form and one in pixel form "
        f"(training time: " + ", ".join(f"{form} {seconds:.0f} s" for form, seconds in
                                        train_wall.items()) + ").\n\n"
        "## Per-layer relative L2 output error\n\n"
        f"Inputs: the real inputs of `conv2` (after conv1/BN/pool) and `fc3` (after "
        f"conv2/BN/pool) on {args.samples} test images. Each form and order uses the "
        "trained layer's weights (`alpha * sign(W)`). `x vs column`: "
        "`||y_x - y_column|| / ||y_column||`; `vs float input`: against the convolution "
        "of the unquantized input with the same binary weights. At order 1 the pixel form "
        "equals the column form (XNOR-Net's `K = A ⊛ k`: the receptive-field mean of the "
        "per-pixel beta is the column's beta). For `fc3` the kernel covers the whole 4x4 "
        "map, so one im2col column is one sample and the sample form equals the column "
        "form.\n\n" + "\n".join(sections) +
        "\n## Accuracy across forms (weights copied, no retraining, no BN recalibration)\n\n"
        f"{accuracy_table}\nPlot: `{NAME}.png`. Wall time of the benchmark: {wall:.0f} s.\n"
    )


def plot(args, errors):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(LAYERS), figsize=(11, 4))
    records = errors["column"]
    for axis, layer_name in zip(axes, LAYERS):
        for beta_form, style in (("column", "k-o"), ("pixel", "-s"), ("sample", "-^")):
            own = _select(records, layer=layer_name, beta_form=beta_form)
            axis.plot([r["order"] for r in own], [100 * r["error_vs_float_input"] for r in own],
                      style, label=f"{beta_form} vs float input")
        for beta_form, style in (("pixel", "--s"), ("sample", "--^")):
            own = _select(records, layer=layer_name, beta_form=beta_form)
            axis.plot([r["order"] for r in own], [100 * r["error_vs_column"] for r in own],
                      style, label=f"{beta_form} vs column")
        axis.set(xlabel="order K", ylabel="relative L2 output error (%)", xticks=args.orders,
                 title=f"{layer_name} (activations of the column-trained model)")
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def main(argv=None):
    args = parse_args(argv)
    command = command_line("beta_forms.py", argv)
    start = time.perf_counter()
    data = load_mnist()
    models, train_wall = {}, {}
    for beta_form in TRAINED_FORMS:
        models[beta_form], train_wall[beta_form] = train(beta_form, data, args)
    (_, _), (x_test, _) = data
    images = scale_images(x_test[: args.samples])
    errors = {form: layer_errors(model, images, args.orders) for form, model in models.items()}
    _, test_set = mnist_datasets(args.batch_size, data=data, limit_test=args.limit_test)
    accuracy = cross_accuracy(models, test_set, args.train_order)
    wall = time.perf_counter() - start
    markdown = render_markdown(args, errors, accuracy, train_wall, wall)
    print(markdown)
    write_results(
        args.output_dir, NAME, command=command, markdown=markdown,
        data={"settings": {key: value for key, value in vars(args).items()
                           if key != "output_dir"},
              "layer_errors": errors, "test_accuracy": accuracy,
              "train_wall_s": train_wall, "wall_s": wall},
        figure=plot(args, errors),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
