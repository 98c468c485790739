"""Recipes resolve and override; Bop, two-stage and distillation really do what they say."""

import dataclasses
import json

import horq_keras  # noqa: F401
import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from train_data import REAL_MNIST, model_weights, needs_mnist

from horq_keras.training import train
from horq_keras.cli import build_parser, main
from horq_keras.models import horq_lenet
from horq_keras.training import distill, optimizers, registry
from horq_keras.training.recipes import RECIPES, Recipe, resolve


def parsed(*argv):
    return build_parser().parse_args(["train", *argv])


def test_presets_resolve_and_every_value_overrides():
    for name in RECIPES:
        assert resolve(name, parsed()) == RECIPES[name]
    imagenet = resolve("groupnet-imagenet", parsed())
    assert (imagenet.optimizer, imagenet.momentum, imagenet.nesterov, imagenet.batch_size,
            imagenet.weight_decay, imagenet.float_learning_rate, imagenet.learning_rate,
            imagenet.init) == ("sgd", 0.9, True, 128, 1e-4, 0.05, 1e-3, "float")
    overrides = {"optimizer": "sgd", "learning_rate": 0.1, "schedule": "step",
                 "lr_milestones": (2, 4), "epochs": 5, "batch_size": 7, "momentum": 0.5,
                 "nesterov": True, "weight_decay": 0.01, "bop_threshold": 1e-6,
                 "bop_gamma": 1e-3, "init": "float", "float_epochs": 3,
                 "float_learning_rate": 0.2, "teacher": "float", "distill_temperature": 3.0,
                 "distill_weight": 0.25, "lr_scaling": "sqrt"}
    assert set(overrides) == {field.name for field in dataclasses.fields(Recipe)}
    argv = []
    for key, value in overrides.items():
        text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value).lower()
        argv += [f"--{key.replace('_', '-')}", text]
    assert resolve("lenet-mnist", parsed(*argv)).to_dict() == overrides


def test_step_schedule_divides_by_ten_at_the_milestones():
    recipe = dataclasses.replace(RECIPES["groupnet-imagenet"], lr_milestones=(2, 3))
    schedule = optimizers.make_schedule(recipe, 0.05, epochs=4, steps_per_epoch=10)
    assert [float(schedule(step)) for step in (0, 19, 21, 29, 31)] == pytest.approx(
        [0.05, 0.05, 0.005, 0.005, 0.0005])
    optimizer = optimizers.make_optimizer(recipe, 0.05, 4, 10)
    assert optimizer.nesterov and optimizer.momentum == 0.9 and optimizer.weight_decay == 1e-4


def test_bop_flips_binary_weights_and_adam_trains_the_rest(rng):
    model = horq_lenet(order=1)
    optimizer = optimizers.make_optimizer(RECIPES["bop"], 1e-3, 1, 1)
    assert isinstance(optimizer, lq.optimizers.CaseOptimizer)
    model.compile(optimizer, "sparse_categorical_crossentropy")
    before = model_weights(model)
    x = rng.random((16, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, 16)
    model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    after = model_weights(model)
    # Bop (larq) writes sign(-sign(w*m - threshold)*w): every latent binary weight becomes
    # +-1, and a weight flips where its momentum agrees with it beyond the threshold.
    kernel_before, kernel_after = before["conv2"][0], after["conv2"][0]
    assert np.array_equal(np.abs(kernel_after), np.ones_like(kernel_after))
    assert (np.sign(kernel_after) != np.sign(kernel_before)).any()
    assert not np.allclose(before["logits_float"][0], after["logits_float"][0])  # Adam


def test_distillation_loss_is_the_papers_formula(rng):
    student = rng.dirichlet(np.ones(10), 8).astype("float32")
    teacher = rng.dirichlet(np.ones(10), 8).astype("float32")
    labels = rng.integers(0, 10, 8)
    temperature, weight = 3.0, 0.3

    def soft(p):
        z = np.log(p + 1e-7) / temperature
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    kl = np.sum(soft(teacher) * np.log(soft(teacher) / soft(student)), -1)
    ce = -np.log(student[np.arange(8), labels])
    expected = np.mean((1 - weight) * ce + weight * temperature**2 * kl)
    loss = distill.DistillationLoss(temperature, weight)(labels, np.concatenate([student,
                                                                                 teacher], -1))
    assert float(loss) == pytest.approx(expected, rel=1e-4)


def recipe_argv(out, *extra):
    return ["train", "--epochs", "1", "--float-epochs", "1", "--limit-train", "256",
            "--limit-test", "64", "--batch-size", "32", "--data-dir", str(REAL_MNIST),
            "--output-dir", str(out), *extra]


def capture_fits(monkeypatch):
    """Record (model that fit trains, model saved, its weights when fit starts)."""
    fits, fit_stage = [], train.fit_stage

    def recording(plan, trained, model, *args, **kwargs):
        fits.append((trained, model, model_weights(model)))
        return fit_stage(plan, trained, model, *args, **kwargs)

    monkeypatch.setattr(train, "fit_stage", recording)
    return fits


@needs_mnist
def test_two_stage_starts_the_binary_model_from_the_trained_float_model(tmp_path,
                                                                         monkeypatch):
    fits = capture_fits(monkeypatch)
    out = tmp_path / "two"
    assert main(recipe_argv(out, "--recipe", "two-stage")) == 0
    (_, float_model, _), (_, binary, binary_start) = fits
    assert float_model.get_layer("conv2").__class__.__name__ == "Conv2D"
    assert binary.get_layer("conv2").__class__.__name__ == "HORQConv2D"
    trained_float = model_weights(tf.keras.models.load_model(str(out / "float_model.h5")))
    report = json.loads((out / "report.json").read_text())
    copied = report["initialised_from_float_layers"]
    assert {"conv1_float", "conv2", "fc3", "logits_float"} <= set(copied)
    for name in copied:  # the binary stage began exactly at the float stage's end
        for start, trained in zip(binary_start[name], trained_float[name]):
            np.testing.assert_array_equal(start, trained)
    fresh = model_weights(registry.build("horq_lenet", {}, input_shape=(28, 28, 1),
                                         num_classes=10))
    assert not np.allclose(fresh["conv2"][0], binary_start["conv2"][0])


@needs_mnist
def test_distill_uses_the_saved_teacher(tmp_path, monkeypatch):
    teacher = horq_lenet(variant="float", name="teacher")
    teacher_path = tmp_path / "teacher.h5"
    teacher.save(teacher_path)
    fits = capture_fits(monkeypatch)
    out = tmp_path / "distill"
    assert main(recipe_argv(out, "--recipe", "distill", "--teacher", str(teacher_path),
                            "--distill-weight", "1")) == 0
    [(trained, student, _)] = fits
    inner = trained.get_layer("teacher")
    assert not inner.trainable
    for saved, used in zip(teacher.get_weights(), inner.get_weights()):
        np.testing.assert_array_equal(saved, used)  # loaded, frozen, not retrained
    assert isinstance(trained.loss, distill.DistillationLoss)
    # With weight 1 the loss is the KL to the teacher alone: another teacher, another loss.
    x = np.random.default_rng(0).random((8, 28, 28, 1)).astype("float32")
    y = np.zeros(8, "int64")
    loss = float(trained.loss(y, trained(x)))
    other = tf.keras.models.clone_model(teacher)
    swapped = distill.distillation_model(student, other)
    assert float(trained.loss(y, swapped(x))) != pytest.approx(loss)
    report = json.loads((out / "report.json").read_text())
    assert report["teacher"] == str(teacher_path)

