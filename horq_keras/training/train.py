"""``horq-keras train``: data -> model -> recipe -> ``Model.fit`` -> LCE -> verified .tflite.

The run, in the order of the functions below:

1. :func:`plan_run` checks everything before anything is written: the recipe and its
   overrides, the model and its ``--model-arg`` values, the data (``--data``,
   ``--data-dir``), that the model accepts the data's image size, a teacher file, and
   the output folder (a finished run is kept unless ``--overwrite``; an unfinished one
   resumes only with the same options). Any problem: one line, exit code 2.
2. :func:`build_datasets`, :func:`build_model`, :func:`compile_model` — the
   strategy-independent pieces: ``tf.data`` pipelines from the data, the model from
   the registry, the optimizer/loss/metrics from the recipe. A ``tf.distribute``
   strategy only has to wrap :func:`build_model` and :func:`compile_model` in its
   ``scope()``: :func:`run` starts the one ``--strategy`` asks for
   (:mod:`horq_keras.training.distribute`), with the global batch, scaled learning
   rates and each source's auto-shard policy.
3. :func:`fit_stage` — ``Model.fit`` with a progress bar, ``BackupAndRestore``, an
   atomic per-epoch ``checkpoint.h5``, ``history.csv`` rewritten atomically, optional
   TensorBoard logs; a loss that becomes NaN or infinite stops the run (exit code 2)
   before its epoch is saved, so the checkpoint and the backup keep the last good one.
   Recipes with ``init=float`` or ``teacher=float`` first train the float counterpart
   the same way (``float/`` of the staging folder, published as ``float_model.h5``).
4. :func:`convert_and_verify` — ``horq_keras.converters.convert`` with the validation
   data as ``verify_data``: the report is the converter's report (ops, MACs, size,
   top-1 agreement and accuracy on the parity samples, the data used), with the Keras
   and TFLite accuracy on the whole validation set.

Files (see :mod:`horq_keras.training.rundir`): the run marks ``OUTPUT/`` as its own
(``.horq-keras-run``), works in ``OUTPUT/.horq-keras-staging/`` and moves ``model.h5``,
``model.tflite``, ``labels.txt``, ``report.json``, ``history.csv``, ``run_config.json``
(and ``float_model.h5``) into ``OUTPUT/`` by rename when complete.

Exit codes: those of every command (:mod:`horq_keras.exit_status`).
"""

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import sys

import larq
import larq_compute_engine as lce
import numpy as np
import tensorflow as tf

from horq_keras.converters import convert
from horq_keras.converters.loading import load_model
from horq_keras.datasets.pipelines import DataError, inspect_data, make_datasets
from horq_keras.exit_status import CONVERSION_FAILED, OK, PARITY_FAILED, fail
from horq_keras.files import atomic_write_bytes, atomic_write_text
from horq_keras.tflite.interpreter import LceInterpreter
from horq_keras.tflite.metadata import embed_labels, labels_text
from horq_keras.training import memory, registry
from horq_keras.training.callbacks import NonFiniteLoss, make_callbacks, save_model_atomic
from horq_keras.training.distill import DistillationLoss, StudentAccuracy, distillation_model
from horq_keras.training.distribute import Distribution, weights_fingerprint
from horq_keras.training.mixed_precision import float32_copy, set_mixed_precision
from horq_keras.training.optimizers import make_optimizer
from horq_keras.training.recipes import resolve
from horq_keras.training.rundir import RunDir, RunDirError, write_json

__all__ = ["RunPlan", "build_datasets",
           "build_model", "compile_model", "convert_and_verify", "fit_stage", "plan_run", "run"]

@dataclasses.dataclass
class RunPlan:
    """Everything a run needs, checked by :func:`plan_run`."""

    args: object
    recipe: object
    model_args: dict
    data: object  # datasets.pipelines.DataInfo
    rundir: RunDir
    config: dict
    resuming: bool
    teacher_path: str = None
    distribution: object = None  # training.distribute.Distribution

    @property
    def needs_float_stage(self):
        return self.recipe.init == "float" or self.recipe.teacher == "float"


def _model_args(args):
    model_args = registry.parse_model_args(args.model, args.model_arg)
    for key in ("order", "beta_form"):
        value = getattr(args, key)
        if value is not None:
            if key not in registry.entry(args.model).arguments():
                raise registry.ModelArgError(f"--{key.replace('_', '-')}: {args.model} has no "
                                             f"{key} argument.")
            if model_args.get(key, value) != value:
                raise registry.ModelArgError(
                    f"--{key.replace('_', '-')} {value} conflicts with --model-arg "
                    f"{key}={model_args[key]}; give one.")
            model_args[key] = value
    return model_args


def _check_builds(plan):
    """Build the model (and its float counterpart) in a graph, allocating nothing: the
    image size must fit it and, on the CPU, a training step must fit in the memory
    available (:mod:`horq_keras.training.memory`)."""
    try:
        footprints = [memory.footprint(functools.partial(build_model, plan,
                                                         float_counterpart=float_counterpart))
                      for float_counterpart in {False, plan.needs_float_stage}]
    except registry.ModelArgError as error:
        raise registry.ModelArgError(f"{error} (--image-size / --data give the input shape "
                                     f"{plan.data.input_shape})") from error
    if not tf.config.list_physical_devices("GPU"):
        workers = plan.distribution.cluster.num_workers if (
            plan.distribution is not None and plan.distribution.cluster) else 1
        memory.check(max(footprints, key=lambda footprint: footprint.bytes(1)),
                     -(-plan.recipe.batch_size // workers), memory.available_memory(),
                     plan.data.input_shape,
                     "--image-size" if plan.args.image_size is not None else "--model",
                     _recompute_hint(plan))


def _recompute_hint(plan):
    """The sentence that suggests recomputing the branches, where the model can."""
    arguments = registry.entry(plan.args.model).arguments()
    if "recompute_branches" not in arguments or plan.model_args.get("recompute_branches"):
        return ""
    return (" Or --model-arg recompute_branches=true: the branches are recomputed in the "
            "backward pass and their activations are not kept.")


def _data_folder(args):
    """``(folder, option)`` of the data read from a folder, or None."""
    if args.data.kind in ("idx", "folder"):
        return args.data.location, f"--data {args.data}"
    return None if args.data_dir is None else (args.data_dir, "--data-dir")


def plan_run(args, distribution=None):
    """Check the whole run (see the module docstring); nothing is written.

    With a ``distribution``, the recipe's batch becomes the global batch and its learning
    rates are scaled (:meth:`~horq_keras.training.distribute.Distribution.scale`).
    Raises ``ValueError`` subclasses whose message is the one line to print.
    """
    recipe = resolve(args.recipe, args)
    if distribution is not None:
        recipe = distribution.scale(recipe)
    model_args = _model_args(args)
    rundir = RunDir(args.output_dir)
    data_folder = _data_folder(args)
    if data_folder is not None:
        rundir.refuse_inside(*data_folder)
    data = inspect_data(args.data, data_dir=args.data_dir, image_size=args.image_size,
                        limit_train=args.limit_train, limit_val=args.limit_test,
                        seed=args.seed, channels=args.channels,
                        skip_bad_images=args.skip_bad_images)
    teacher_path = None
    if recipe.teacher not in ("none", "float"):
        teacher_path = recipe.teacher
        teacher = load_model(teacher_path, argument="--teacher")
        if tuple(teacher.input_shape[1:]) != tuple(data.input_shape):
            raise ValueError(f"--teacher: {teacher_path} takes inputs of shape "
                             f"{teacher.input_shape[1:]}, the data {data.input_shape}.")
        if teacher.output_shape[-1] != data.num_classes:
            raise ValueError(f"--teacher: {teacher_path} has {teacher.output_shape[-1]} "
                             f"outputs; the data has {data.num_classes} classes.")
    tensorboard = args.tensorboard
    if tensorboard is not None and tensorboard.exists() and not tensorboard.is_dir():
        raise ValueError(f"--tensorboard: {tensorboard} exists and is not a directory.")
    config = {
        "model": args.model, "model_args": model_args, "data": str(args.data),
        "data_dir": None if args.data_dir is None else str(args.data_dir),
        "image_size": data.image_size, "input_shape": list(data.input_shape),
        "num_classes": data.num_classes, "recipe": args.recipe,
        "recipe_values": recipe.to_dict(), "seed": args.seed,
        "limit_train": args.limit_train, "limit_test": args.limit_test,
    }
    if distribution is not None:
        config["distribution"] = distribution.to_config()
    config = json.loads(json.dumps(config))  # tuples as lists, as saved
    plan = RunPlan(args, recipe, model_args, data, rundir, config, False,
                   teacher_path, distribution)
    plan.resuming = plan.rundir.check(config, args.overwrite)
    _check_builds(plan)
    return plan


def build_datasets(plan):
    """``(train, val)`` batched ``tf.data`` pipelines of the plan's data."""
    return make_datasets(plan.data, batch_size=plan.recipe.batch_size, seed=plan.args.seed)


def build_model(plan, *, float_counterpart=False):
    """The registered model (or its float counterpart) for the data's shape and classes."""
    return registry.build(plan.args.model, plan.model_args, input_shape=plan.data.input_shape,
                          num_classes=plan.data.num_classes,
                          float_counterpart=float_counterpart)


def compile_model(plan, model, *, learning_rate, epochs, steps_per_epoch, teacher=None):
    """Compile ``model`` with the recipe's optimizer; returns the model ``fit`` trains.

    With a ``teacher`` it is the distillation model (student and frozen teacher,
    :mod:`horq_keras.training.distill`); otherwise ``model`` itself.
    """
    optimizer = make_optimizer(plan.recipe, learning_rate, epochs, steps_per_epoch)
    if teacher is None:
        trained = model
        trained.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                        metrics=["accuracy"])
    else:
        trained = distillation_model(model, teacher)
        trained.compile(optimizer=optimizer, loss=DistillationLoss(
            plan.recipe.distill_temperature, plan.recipe.distill_weight),
            metrics=[StudentAccuracy()])
    if isinstance(trained.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # Each replica's metric is already the cluster's: Keras' default ("sum") would
        # show it times the number of workers in the progress bar (accuracy 1.8).
        trained.distribute_reduction_method = "first"
    return trained


def fit_stage(plan, trained, model, datasets, stage_dir, epochs, finish, tensorboard=None):
    """``fit`` with validation every epoch; ``finish(epochs_run, history)`` saves the
    result (see :class:`FinishStage`)."""
    train_set, val_set = datasets
    backup = (None if plan.distribution is None
              else plan.distribution.backup_callback(stage_dir))
    trained.fit(train_set, validation_data=val_set, epochs=epochs, verbose=1,
                callbacks=make_callbacks(stage_dir, model, tensorboard, finish, backup))
    with contextlib.suppress(OSError):  # BackupAndRestore empties its directory but keeps it
        os.rmdir(backup.backup_dir if backup else stage_dir / "backup")
    (stage_dir / "checkpoint.h5").unlink(missing_ok=True)


def transfer_weights(source, target):
    """Copy the weights of every layer of ``source`` into the same-named layer of
    ``target`` whose weight shapes match; returns the names of the layers copied."""
    copied = []
    for layer in target.layers:
        try:
            weights = source.get_layer(layer.name).get_weights()
        except ValueError:
            continue
        shapes = [w.shape for w in layer.get_weights()]
        if weights and shapes == [w.shape for w in weights]:
            layer.set_weights(weights)
            copied.append(layer.name)
    if not copied:
        raise ValueError(f"no layer of {source.name!r} matches a layer of {target.name!r}.")
    return copied


def _stage_tensorboard(plan, name):
    return None if plan.args.tensorboard is None else plan.args.tensorboard / name


def _scope(strategy):
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def _float_stage(plan, datasets, strategy):
    """Train the float counterpart (or load it, when already trained); returns it."""
    stage_dir = plan.rundir.staging / "float"
    path = plan.rundir.staging / "float_model.h5"
    if path.is_file():
        print(f"float counterpart: already trained ({path})")
        with _scope(strategy):
            return tf.keras.models.load_model(str(path))
    stage_dir.mkdir(exist_ok=True)
    recipe = plan.recipe
    with _scope(strategy):
        model = build_model(plan, float_counterpart=True)
        trained = compile_model(plan, model, learning_rate=recipe.stage1_learning_rate,
                                epochs=recipe.stage1_epochs,
                                steps_per_epoch=plan.data.steps_per_epoch(recipe.batch_size))
    print(f"stage 1: float counterpart {model.name}, {recipe.stage1_epochs} epochs, "
          f"learning rate {recipe.stage1_learning_rate}")
    fit_stage(plan, trained, model, datasets, stage_dir, recipe.stage1_epochs,
              lambda epochs_run, history: save_model_atomic(model, path),
              _stage_tensorboard(plan, "float"))
    return model


def _main_stage(plan, datasets, strategy):
    """Train the model itself; ``fit`` ends by saving ``model.h5`` and the training facts
    for the report, and marking the run "trained"."""
    recipe, staging = plan.recipe, plan.rundir.staging
    float_model = _float_stage(plan, datasets, strategy) if plan.needs_float_stage else None
    teacher = None
    if recipe.teacher == "float":
        teacher = float_model
    elif plan.teacher_path is not None:
        with _scope(strategy):
            teacher = load_model(plan.teacher_path, argument="--teacher")
    facts = {}
    with _scope(strategy):
        model = build_model(plan)
        if recipe.init == "float":
            facts["initialised_from_float_layers"] = transfer_weights(float_model, model)
        trained = compile_model(plan, model, learning_rate=recipe.learning_rate,
                                epochs=recipe.epochs, steps_per_epoch=plan.data.steps_per_epoch(recipe.batch_size),
                                teacher=teacher)
    if teacher is not None:
        facts["teacher"] = plan.teacher_path or "float counterpart (stage 1)"

    def finish(epochs_run, history):
        save_model_atomic(model, staging / "model.h5")
        write_json(staging / "facts.json", {
            **facts,
            "epochs_run": epochs_run,  # 0-based; a resumed run starts after its backup
            "history": history.history(),
            "train_seconds": history.seconds(),
        })
        plan.rundir.set_stage("trained")

    fit_stage(plan, trained, model, datasets, staging, recipe.epochs, finish,
              _stage_tensorboard(plan, "model"))


def _verify_batches(plan, val_set):
    """The validation batches of the parity check (at most ``--verify-samples`` images)."""
    batches = -(-plan.args.verify_samples // plan.recipe.batch_size)
    return val_set.take(batches)


def convert_and_verify(plan, model, val_set):
    """``horq_keras.converters.convert`` with the validation data; ``(report, status)``."""
    try:
        report = convert(model, plan.rundir.staging / "model.tflite",
                         verify_data=_verify_batches(plan, val_set), atol=plan.args.atol,
                         rtol=plan.args.rtol, progress=True)
    except RuntimeError as error:
        return None, fail("train", f"conversion failed: {error}", CONVERSION_FAILED)
    print(report)
    status = OK if report.parity.ok else PARITY_FAILED
    if status:
        print(f"horq-keras train: the .tflite disagrees with Keras: "
              f"{report.parity.summary()}", file=sys.stderr)
    return report, status


def _keras_accuracy(model, val_set):
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return float(model.evaluate(val_set, verbose=0, return_dict=True)["accuracy"])


def _tflite_accuracy(path, val_set):
    """Top-1 accuracy of the ``.tflite`` at ``path`` on every batch of ``val_set``."""
    interpreter = LceInterpreter(path.read_bytes())
    correct = total = 0
    for images, labels in val_set:
        probabilities = interpreter.predict([images.numpy()])[0]
        correct += int(np.sum(probabilities.argmax(-1) == labels.numpy()))
        total += len(labels)
    return correct / total


def _results(plan, model, facts, val_set):
    """Convert (unless told not to), write ``labels.txt`` (the class names in label order,
    also embedded in the ``.tflite`` as TFLite metadata) and ``report.json``; returns the
    exit code.

    ``keras_test_accuracy`` and ``tflite_test_accuracy`` are measured on the whole
    validation set (``val_samples``); the parity check's samples (``parity_samples``, at
    most ``--verify-samples``) have their own ``parity_*_accuracy``.
    """
    staging, args = plan.rundir.staging, plan.args
    report = {"config": plan.config, **facts, "versions": _versions(),
              "class_names": plan.data.class_names, "skipped_images": plan.data.skipped}
    status = 0
    column = plan.model_args.get("beta_form") == "column"
    if args.no_convert or column:
        if column:
            print("Skipping conversion: beta_form='column' (per-im2col-column beta) has no "
                  "LCE lowering; train with --beta-form pixel or sample to deploy.")
        report["converted"] = False
    else:
        conversion, status = convert_and_verify(plan, model, val_set)
        if conversion is None:
            return status
        parity = conversion.parity
        tflite = staging / "model.tflite"
        atomic_write_bytes(tflite, embed_labels(tflite.read_bytes(), report["class_names"],
                                                model.name))
        report.update(
            converted=True, conversion=conversion.to_dict(),
            tflite_test_accuracy=_tflite_accuracy(tflite, val_set),
            parity_samples=parity.samples, parity_keras_accuracy=parity.keras_accuracy,
            parity_tflite_accuracy=parity.tflite_accuracy, top1_agreement=parity.top1_agreement,
            parity_ok=parity.ok, op_counts=dict(conversion.op_counts))
    report.update(val_samples=plan.data.val_count,
                  keras_test_accuracy=_keras_accuracy(model, val_set))
    atomic_write_text(staging / "labels.txt", labels_text(report["class_names"]))
    write_json(staging / "report.json", report)
    plan.rundir.set_stage("converted")
    return status


def _execute(plan, strategy):
    rundir = plan.rundir
    if not plan.resuming:
        rundir.begin(plan.config)
    print(plan.data.describe())
    print(plan.recipe.describe(plan.args.recipe))
    tf.keras.utils.set_random_seed(plan.args.seed)
    datasets = build_datasets(plan)
    if plan.distribution is not None:
        datasets = plan.distribution.shard_datasets(datasets, plan.args.data.kind)
    if not rundir.stage_reached("trained"):
        _main_stage(plan, datasets, strategy)
    if not rundir.stage_reached("converted"):
        # A plain float32 model on this process alone: LCE converts float32 models only,
        # and the other workers take no part in the conversion.
        set_mixed_precision(False)
        model = float32_copy(tf.keras.models.load_model(str(rundir.staging / "model.h5")))
        print(f"final weights sha256: {weights_fingerprint(model)}")
        if plan.distribution is not None and not plan.distribution.is_chief:
            return 0  # the chief converts and reports; this worker's folder is temporary
        facts = json.loads((rundir.staging / "facts.json").read_text())
        status = _results(plan, model, facts, datasets[1])
        if status == CONVERSION_FAILED:
            return status
    report = json.loads((rundir.staging / "report.json").read_text())
    rundir.publish()
    _print_results(report)
    print(f"Results in {rundir.output}/")
    return OK if report.get("parity_ok", True) else PARITY_FAILED


def run(args):
    """The ``train`` job; returns the process exit code (see the module docstring).

    The distribution (strategy, replicas, global batch, learning-rate scaling) comes
    first: collective ops must be configured before TensorFlow does any other work. In a
    multi-worker run every worker trains; only the chief writes ``--output-dir``, the
    others work in a temporary folder of their own, removed at the end.
    """
    if args.list_models:
        print(registry.describe())
        return 0
    try:
        distribution = Distribution.from_args(args, resolve(args.recipe, args))
    except ValueError as error:
        return fail("train", error)
    print(distribution.describe())
    with distribution.write_dir(args.output_dir) as write_dir:
        try:
            plan = plan_run(argparse.Namespace(**{**vars(args), "output_dir": write_dir}),
                            distribution)
        except (ValueError, RunDirError, DataError, OSError) as error:
            return fail("train", error)
        try:
            return _execute(plan, distribution)
        except NonFiniteLoss as error:
            return fail("train", error)


def _print_results(report):
    rows = [
        ("validation images", "val_samples", ""),
        ("Keras test accuracy", "keras_test_accuracy", ".4f"),
        ("TFLite test accuracy", "tflite_test_accuracy", ".4f"),
        ("parity samples", "parity_samples", ""),
        ("Keras parity-sample accuracy", "parity_keras_accuracy", ".4f"),
        ("TFLite parity-sample accuracy", "parity_tflite_accuracy", ".4f"),
        ("top-1 agreement", "top1_agreement", ".4f"),
        ("training wall time (s)", "train_seconds", ".1f"),
        ("TFLite ops", "op_counts", ""),
    ]
    for name, key, spec in rows:
        if report.get(key) is not None:
            print(f"{name:>29}: {report[key]:{spec}}")


def _versions():
    return {"tensorflow": tf.__version__, "larq": larq.__version__,
            "larq_compute_engine": lce.__version__, "numpy": np.__version__}
