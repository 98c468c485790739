"""Group-Net branches recomputed in the backward pass (``recompute_branches=True``): the
same gradients, batch-norm statistics updated once per step, the same saved model and
converted graph, the memory estimate, the trainer's ``--model-arg``, and bad values."""

import json
import re
import subprocess
import sys
import textwrap

import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf
from train_data import REAL_MNIST, mnist_folder, needs_mnist

from horq_keras.cli import main
from horq_keras.groupnet import groupnet_alexnet, groupnet_resnet
from horq_keras.groupnet.recompute import RecomputedBranchesModel, kept_activations
from horq_keras.tflite.graph import op_counts, operator_names
from horq_keras.training import memory, registry

TINY = {"stage_blocks": (1, 1), "stage_filters": (4, 8), "input_shape": (12, 12, 3),
        "num_classes": 3}


def build_pair(builder=groupnet_resnet, **kwargs):
    """The same model without and with recomputation, with equal weights."""
    arguments = {**TINY, **kwargs} if builder is groupnet_resnet else kwargs
    tf.keras.backend.clear_session()
    plain = builder(**arguments)
    tf.keras.backend.clear_session()
    recomputed = builder(**arguments, recompute_branches=True)
    recomputed.set_weights(plain.get_weights())
    return plain, recomputed


def batch(model, size=6, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((size, *model.input_shape[1:])).astype("float32")
    return images, np.arange(size) % model.output_shape[-1]


def gradients(model, images, labels):
    loss = tf.keras.losses.SparseCategoricalCrossentropy()

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            value = loss(labels, model(images, training=True))
        return tape.gradient(value, model.trainable_variables)

    return [g.numpy() for g in step()]


@pytest.mark.parametrize("kwargs", [
    {"num_bases": 3},
    {"num_bases": 1},
    {"num_bases": 2, "partition": "layerwise"},
    {"num_bases": 2, "partition": "v3", "activation_bits": 2},
], ids=["v1_k3", "k1", "layerwise", "v3_a2"])
def test_gradients_equal_the_stored_activations_ones(kwargs):
    plain, recomputed = build_pair(**kwargs)
    assert not isinstance(plain, RecomputedBranchesModel)
    assert isinstance(recomputed, RecomputedBranchesModel)
    assert len(recomputed.recomputed_branches) > 1
    images, labels = batch(plain)
    expected, got = gradients(plain, images, labels), gradients(recomputed, images, labels)
    assert len(expected) == len(got) == len(plain.trainable_variables)
    for variable, want, have in zip(plain.trainable_variables, expected, got):
        np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6, err_msg=variable.name)


def test_alexnet_branches_are_recomputed_with_the_same_gradients():
    plain, recomputed = build_pair(groupnet_alexnet, num_bases=2, fc_units=16,
                                   input_shape=(32, 32, 1), num_classes=3)
    images, labels = batch(plain, size=4)
    for want, have in zip(gradients(plain, images, labels),
                          gradients(recomputed, images, labels)):
        np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6)


def _step_graph_ops(model, images, labels):
    """Op type -> count in the graph of one ``train_on_batch`` step."""
    model.compile(tf.keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.train_on_batch(images, labels)
    graph = model.train_function.get_concrete_function(
        iter(tf.data.Dataset.from_tensors((images, labels)))).graph
    counts = {}
    for op in graph.get_operations():
        counts[op.type] = counts.get(op.type, 0) + 1
    return counts


def test_branches_run_twice_and_batch_norm_statistics_are_updated_once_per_step():
    plain, recomputed = build_pair(num_bases=2)
    images, labels = batch(plain)
    before = [v.numpy() for v in plain.non_trainable_variables]
    plain_ops = _step_graph_ops(plain, images, labels)
    recomputed_ops = _step_graph_ops(recomputed, images, labels)
    branch_norms = sum("_base" in layer.name and layer.name.endswith("_bn")
                       for layer in plain.layers)
    # The forward pass of every branch runs again in the backward pass ...
    assert (recomputed_ops["FusedBatchNormV3"]
            == plain_ops["FusedBatchNormV3"] + branch_norms)
    # ... but writes the moving statistics only once.
    assert recomputed_ops["AssignVariableOp"] == plain_ops["AssignVariableOp"]
    for variable, old, new in zip(plain.non_trainable_variables, before,
                                  recomputed.non_trainable_variables):
        assert not np.array_equal(old, new.numpy()), variable.name  # updated ...
        np.testing.assert_allclose(new.numpy(), variable.numpy(), rtol=1e-6, atol=1e-7,
                                   err_msg=variable.name)  # ... as without recomputation
    for variable, other in zip(plain.trainable_variables, recomputed.trainable_variables):
        np.testing.assert_allclose(other.numpy(), variable.numpy(), rtol=1e-5, atol=1e-6)


def test_config_round_trip_and_h5_keep_the_recomputation(tmp_path):
    plain, recomputed = build_pair(num_bases=2)
    config = recomputed.get_config()
    assert config.pop("recomputed_branches") == list(recomputed.recomputed_branches)
    assert config == plain.get_config()  # the graph and every layer as without it
    assert recomputed.recomputed_branches == ("group1_base1", "group1_base2",
                                              "group2_base1", "group2_base2")

    clone = RecomputedBranchesModel.from_config(recomputed.get_config())
    assert clone.recomputed_branches == recomputed.recomputed_branches

    recomputed.save(tmp_path / "model.h5")
    loaded = tf.keras.models.load_model(tmp_path / "model.h5")
    assert isinstance(loaded, RecomputedBranchesModel)
    assert loaded.recomputed_branches == recomputed.recomputed_branches
    images, labels = batch(plain)
    np.testing.assert_array_equal(loaded(images).numpy(), recomputed(images).numpy())
    for want, have in zip(gradients(plain, images, labels), gradients(loaded, images, labels)):
        np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6)


def test_conversion_gives_the_same_graph_as_without_recomputation():
    plain, recomputed = build_pair(num_bases=2, stage_filters=(8, 8))
    expected, got = lce.convert_keras_model(plain), lce.convert_keras_model(recomputed)
    assert op_counts(got) == op_counts(expected)
    assert operator_names(got) == operator_names(expected)
    assert op_counts(got)["LceBconv2d"] == 2 * 5  # 2 bases x (2 + 3 convolutions)


def test_memory_estimate_counts_what_recomputation_keeps():
    plain, recomputed = build_pair(num_bases=2)
    every = kept_activations(plain)
    assert every == sum(int(np.prod(layer.output.shape[1:])) for layer in plain.layers)
    branch = [layer for layer in plain.layers if "_base" in layer.name]
    outside = every - sum(int(np.prod(layer.output.shape[1:])) for layer in branch)
    largest = max(sum(int(np.prod(layer.output.shape[1:])) for layer in branch
                      if layer.name.startswith(prefix + "_"))
                  for prefix in recomputed.recomputed_branches)
    outputs = sum(int(np.prod(layer.output.shape[1:])) for layer in branch
                  if layer.name.endswith("_add"))  # every branch ends with its block's add
    assert kept_activations(recomputed) == outside + outputs + largest < every

    def footprint(recompute):
        return memory.footprint(lambda: groupnet_resnet(
            **TINY, num_bases=5, recompute_branches=recompute))

    assert footprint(True).parameters == footprint(False).parameters
    assert footprint(True).activations < footprint(False).activations / 2


def test_bad_values_name_the_argument():
    with pytest.raises(TypeError, match="`recompute_branches` must be True or False"):
        groupnet_resnet(**TINY, num_bases=2, recompute_branches="yes")
    with pytest.raises(registry.ModelArgError, match="--model-arg recompute_branches: must "
                                                     "be true or false; got 'yes'"):
        registry.parse_model_args("groupnet_resnet18", ["recompute_branches=yes"])
    assert registry.parse_model_args("binary_alexnet", ["recompute_branches=true"]) == {
        "recompute_branches": True}
    with pytest.raises(ValueError, match="no layer of 'm' is named 'nothing'"):
        inputs = tf.keras.Input((2,))
        RecomputedBranchesModel(inputs, tf.keras.layers.Dense(1)(inputs), name="m",
                                recomputed_branches=["nothing"])


@needs_mnist
def test_the_trainer_takes_the_option(tmp_path):
    folder = mnist_folder(tmp_path / "data", 32, 16)
    out = tmp_path / "run"
    argv = ["train", "--model", "groupnet_resnet18", "--model-arg", "num_bases=2",
            "--model-arg", "stage_filters=4,4,8,8", "--model-arg", "recompute_branches=true",
            "--data", f"folder:{folder}", "--image-size", "16", "--epochs", "1",
            "--batch-size", "16", "--limit-test", "16", "--output-dir", str(out)]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["parity_ok"] and report["op_counts"]["LceBconv2d"] == 2 * 19
    model = tf.keras.models.load_model(out / "model.h5")
    assert isinstance(model, RecomputedBranchesModel)
    assert len(model.recomputed_branches) == 2 * 8


@needs_mnist
def test_a_run_refused_for_memory_suggests_recomputation_which_fits_a_larger_batch(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 300_000_000)
    argv = ["train", "--model", "groupnet_resnet18", "--model-arg", "num_bases=5",
            "--model-arg", "stage_filters=8,8,16,16", "--data", f"idx:{REAL_MNIST}",
            "--batch-size", "4096", "--output-dir", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Or --model-arg recompute_branches=true" in err
    fits = int(re.search(r"--batch-size (\d+) fits", err).group(1))
    assert main([*argv, "--model-arg", "recompute_branches=true"]) == 2
    err = capsys.readouterr().err
    assert "recompute_branches" not in err
    assert int(re.search(r"--batch-size (\d+) fits", err).group(1)) > 2 * fits
    assert not (tmp_path / "out").exists()


MIRRORED = textwrap.dedent("""
    import json
    import horq_keras
    import numpy as np
    import tensorflow as tf
    from horq_keras.groupnet import groupnet_resnet

    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    rng = np.random.default_rng(0)
    images = rng.standard_normal((16, 12, 12, 3)).astype("float32")
    labels = np.arange(16) % 3
    weights, results = None, []
    for recompute in (False, True):
        with strategy.scope():
            model = groupnet_resnet(stage_blocks=(1, 1), stage_filters=(4, 8),
                                    input_shape=(12, 12, 3), num_classes=3, num_bases=2,
                                    recompute_branches=recompute)
            model.compile(tf.keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
        weights = weights or model.get_weights()
        model.set_weights(weights)
        model.fit(images, labels, batch_size=8, epochs=1, verbose=0, shuffle=False)
        results.append(model.get_weights())
    print(json.dumps(max(float(np.abs(a - b).max()) for a, b in zip(*results))))
""")


def test_mirrored_strategy_trains_the_same_with_recomputation():
    """Two logical CPU devices (configured before TensorFlow starts: a child process)."""
    result = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1]) < 1e-5
