"""Input pipeline vs training step: can ``horq-keras train`` feed ``groupnet_resnet18``?

Measures, in one run at the same image size and batch size:

- the training pipeline of an image folder (:mod:`horq_keras.datasets.pipelines`: parallel
  PNG/JPEG decode, resize, cache when it fits, random-resized crop and flip, batching,
  prefetch) in images per second, iterated alone for ``--pipeline-batches`` batches
  after one warm-up epoch (the cached state ``fit`` sees from epoch 2 on), and once cold
  (first epoch: decoding from disk);
- the training step of ``groupnet_resnet18`` (``--model-arg`` values as given) on
  in-memory batches, in images per second (``Model.train_on_batch``, best of
  ``--repeats`` timed steps after two warm-up steps).

The pipeline is not the bottleneck when its rate is well above the step rate (both use
the same cores here: on this 2-core x86 machine the ratio is what counts).

Command and budget: ``python benchmarks/input_pipeline.py`` (an image folder of 2,000
MNIST digits written as PNG in a temporary folder, 64x64, batch 128, groupnet_resnet18
with num_bases=2): a few minutes. Results: ``benchmarks/results/input_pipeline.{md,json,png}``.
"""

# horq_keras first: it selects Keras 2 for tf.keras before TensorFlow is imported.
import horq_keras  # noqa: F401, I001
import os
import pathlib
import tempfile
import time

import tensorflow as tf
from _results import (
    base_parser,
    command_line,
    load_note,
    markdown_table,
    parse_smoke_args,
    write_results,
)

from horq_keras.datasets import load_mnist
from horq_keras.training import registry
from horq_keras.datasets.pipelines import inspect_data, make_datasets
from horq_keras.datasets.sources import DataSource

NAME = "input_pipeline"


def parse_args(argv):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=pathlib.Path, default=None,
                        help="an image folder (train/<class>/...); default: MNIST digits "
                             "written as PNG into a temporary folder")
    parser.add_argument("--images", type=int, default=2000,
                        help="MNIST digits written when --folder is not given")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--pipeline-batches", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model-arg", action="append", default=None,
                        help="groupnet_resnet18 argument (default: num_bases=2)")
    return parse_smoke_args(parser, argv, {
        "images": 64, "image_size": 32, "batch_size": 16, "pipeline_batches": 3,
        "repeats": 1, "model_arg": ["num_bases=1", "stage_filters=4,4,8,8"]})


def write_digit_folder(root, count):
    (x_train, y_train), (x_val, y_val) = load_mnist()
    for split, images, labels in (("train", x_train[:count], y_train[:count]),
                                  ("val", x_val[:count // 10 + 1], y_val[:count // 10 + 1])):
        for index, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{index:05d}.png").write_bytes(tf.io.encode_png(image[..., None]).numpy())
    return root


def pipeline_rate(dataset, batches):
    """Images/s of ``batches`` batches of ``dataset`` (repeated as needed)."""
    iterator = iter(dataset.repeat())
    start, images = time.perf_counter(), 0
    for _ in range(batches):
        images += int(next(iterator)[0].shape[0])
    return images / (time.perf_counter() - start)


def step_rate(model, batch, repeats):
    """Images/s of ``train_on_batch`` on an in-memory batch (best of ``repeats``)."""
    x, y = batch
    for _ in range(2):
        model.train_on_batch(x, y)
    best = min(_timed(model.train_on_batch, x, y) for _ in range(repeats))
    return len(x) / best


def _timed(function, *args):
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def plot(labels, rates):
    """Horizontal bars of images/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 2.5))
    axes.barh(labels, rates, color=["tab:blue", "tab:blue", "tab:orange"])
    axes.set_xlabel("images / s (x86, shared cores)")
    axes.invert_yaxis()
    figure.tight_layout()
    return figure


def main(argv=None):
    args = parse_args(argv)
    command = command_line("input_pipeline.py", argv)
    model_args = args.model_arg or ["num_bases=2"]
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.folder or write_digit_folder(pathlib.Path(temporary), args.images)
        info = inspect_data(DataSource("folder", str(folder)), image_size=args.image_size)
        train, _ = make_datasets(info, batch_size=args.batch_size, seed=0)
        load = {"before": os.getloadavg()}
        steps = info.steps_per_epoch(args.batch_size)
        cold = pipeline_rate(train, steps)  # first epoch: reads, decodes, fills the cache
        warm = pipeline_rate(train, args.pipeline_batches)
        model = registry.build("groupnet_resnet18",
                               registry.parse_model_args("groupnet_resnet18", model_args),
                               input_shape=info.input_shape, num_classes=info.num_classes)
        model.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
        batch = next(iter(train))
        training = step_rate(model, (batch[0].numpy(), batch[1].numpy()), args.repeats)
        load["after"] = os.getloadavg()
    figures = {"images": info.train_count, "image_size": args.image_size,
               "batch_size": args.batch_size, "model_args": model_args,
               "pipeline_cold_images_per_s": cold, "pipeline_warm_images_per_s": warm,
               "train_step_images_per_s": training, "warm_pipeline_over_step": warm / training,
               "load_average": load}
    table = markdown_table(
        ["what", "images / s", "× training step"],
        [["input pipeline, first epoch (read + decode + cache)", f"{cold:.0f}",
          f"{cold / training:.1f}"],
         ["input pipeline, later epochs (cached)", f"{warm:.0f}", f"{warm / training:.1f}"],
         [f"groupnet_resnet18 ({', '.join(model_args)}) training step", f"{training:.1f}",
          "1.0"]])
    verdict = ("the pipeline is not the bottleneck" if min(cold, warm) > 2 * training
               else "the pipeline IS (close to) the bottleneck")
    markdown = (
        f"# Input pipeline vs training step ({args.image_size}x{args.image_size}, batch "
        f"{args.batch_size})\n\n"
        f"Image folder of {info.train_count} PNG images ({info.num_classes} classes), the "
        f"training pipeline of `horq-keras train` (random-resized crop + flip). Training step: "
        f"`train_on_batch` on an in-memory batch, best of {args.repeats}. x86, {os.cpu_count()} "
        f"cores shared by pipeline and model.\n\n{table}\n"
        f"Verdict: {verdict} (warm pipeline {warm / training:.1f}x the step rate). "
        f"{load_note(load)}\n")
    figure = plot(["pipeline, first epoch", "pipeline, cached", "groupnet_resnet18 step"],
                  [cold, warm, training])
    for path in write_results(args.output_dir, NAME, command=command, markdown=markdown,
                              data=figures, figure=figure):
        print(path)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
