"""Group-Net's building block (eq. 3, 5, 6) and the decompositions of a body: the scaled
sum against NumPy, partitions, where skip connections sit, and that every branch and
every scale is trained."""

import numpy as np
import pytest
import tensorflow as tf

from horq_keras.groupnet import (
    BranchScales,
    binary_group,
    conv_unit,
    groupnet_resnet,
    resolve_partition,
)

SMALL = {"stage_blocks": (1, 1, 1), "stage_filters": (4, 8, 8), "input_shape": (12, 12, 1),
         "num_classes": 3}


def test_branch_scales_sum_matches_numpy(rng):
    branches = [rng.standard_normal((2, 3, 3, 4)).astype("float32") for _ in range(3)]
    layer = BranchScales()
    tensors = [tf.constant(b) for b in branches]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        y = layer(tensors)
        loss = tf.reduce_sum(y * y)
    np.testing.assert_allclose(layer.get_weights()[0], [1 / 3] * 3)  # initialised to 1/K
    np.testing.assert_allclose(y.numpy(), sum(branches) / 3, rtol=1e-6)

    lam = np.array([0.5, -1.25, 2.0], dtype="float32")
    layer.set_weights([lam])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(tensors)
        y = layer(tensors)
        loss = tf.reduce_sum(y * y)
    expected = sum(scale * b for scale, b in zip(lam, branches))
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5)
    grad_lambda = tape.gradient(loss, layer.scales).numpy()
    np.testing.assert_allclose(grad_lambda, [np.sum(2 * expected * b) for b in branches],
                               rtol=1e-4)
    for scale, grad in zip(lam, tape.gradient(loss, tensors)):
        np.testing.assert_allclose(grad.numpy(), 2 * expected * scale, rtol=1e-5)


def test_branch_scales_rejects_bad_inputs():
    x = tf.keras.Input((4, 4, 2))
    with pytest.raises(ValueError, match="list of at least 2 branch outputs"):
        BranchScales()([x])
    with pytest.raises(ValueError, match="must have the same shape"):
        BranchScales()([x, tf.keras.Input((4, 4, 3))])


def _unit(filters):
    return lambda x, prefix: conv_unit(x, filters, 3, name=prefix)


def test_binary_group_builds_independent_branches():
    x = tf.keras.Input((6, 6, 3))
    y = binary_group(x, _unit(5), num_bases=3, name="g")
    model = tf.keras.Model(x, y)
    convs = [layer.name for layer in model.layers if hasattr(layer, "kernel")]
    assert convs == ["g_base1", "g_base2", "g_base3"]
    assert [layer.name for layer in model.layers if isinstance(layer, BranchScales)] == ["g_scales"]
    kernels = [model.get_layer(name).kernel for name in convs]
    assert len({id(kernel) for kernel in kernels}) == 3  # no weight sharing
    # Each branch keeps its own BN before its quantizer.
    assert all(model.get_layer(f"{name}_bn") for name in convs)


def test_one_base_is_the_branch_itself():
    x = tf.keras.Input((6, 6, 3))
    model = tf.keras.Model(x, binary_group(x, _unit(5), num_bases=1, name="g"))
    assert not any(isinstance(layer, BranchScales) for layer in model.layers)
    assert [layer.name for layer in model.layers if hasattr(layer, "kernel")] == ["g_base1"]


@pytest.mark.parametrize("num_bases", [0, -2, 2.0, "3", None, True])
def test_bad_num_bases(num_bases):
    x = tf.keras.Input((6, 6, 3))
    with pytest.raises(ValueError, match=r"`num_bases` must be an integer >= 1"):
        binary_group(x, _unit(5), num_bases=num_bases, name="g")


@pytest.mark.parametrize("partition,expected", [
    ("v1", (1,) * 8), ("v2", (2, 2, 2, 2)), ("v3", (8,)), ((3, 5), (3, 5)),
    ([1, 2, 5], (1, 2, 5)), ("layerwise", "layerwise"),
])
def test_named_and_free_partitions(partition, expected):
    assert resolve_partition(partition, 8) == expected


def test_v2_with_an_odd_unit_count_ends_with_a_single_unit():
    assert resolve_partition("v2", 7) == (2, 2, 2, 1)


@pytest.mark.parametrize("partition,message", [
    ((3, 3), r"cover the network's 8 residual blocks exactly; the group sizes \(3, 3\) add up to 6"),
    ((4, 5), r"8 residual blocks exactly; the group sizes \(4, 5\) add up to 9"),
    ((0, 8), "positive integers"),
    ((2.0, 6), "positive integers"),
    ((), "non-empty sequence"),
    (8, "non-empty sequence"),
    ("v4", r"one of \('layerwise', 'v1', 'v2', 'v3'\)"),
    (None, "non-empty sequence"),
])
def test_bad_partitions(partition, message):
    with pytest.raises(ValueError, match=message):
        resolve_partition(partition, 8, "residual block")


def _layers_of(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


def test_skip_connections_inside_branches_for_group_wise():
    model = groupnet_resnet(num_bases=2, partition="v1", **SMALL)
    adds = _layers_of(model, tf.keras.layers.Add)
    assert len(adds) == 2 * 3  # one residual add per block per branch
    add = model.get_layer("group2_base2_stage2_block1_add")
    # The branch's own conv2 and its own downsampling shortcut meet in the branch's add.
    inbound = {t._keras_history.layer.name for t in add.input}
    assert inbound == {"group2_base2_stage2_block1_conv2", "group2_base2_stage2_block1_downsample"}
    # The group input (the previous group's scaled sum) feeds both branches' first BN.
    for base in (1, 2):
        bn = model.get_layer(f"group2_base{base}_stage2_block1_conv1_bn")
        assert bn.input._keras_history.layer.name == "group1_scales"


def test_layerwise_keeps_skip_connections_outside_branches():
    model = groupnet_resnet(num_bases=2, partition="layerwise", **SMALL)
    assert len(_layers_of(model, tf.keras.layers.Add)) == 3  # one per block, shared
    add = model.get_layer("stage2_block1_add")
    inbound = {t._keras_history.layer.name for t in add.input}
    assert inbound == {"stage2_block1_conv2_scales", "stage2_block1_downsample_scales"}


@pytest.mark.parametrize("partition,groups", [
    ("layerwise", 8), ("v1", 3), ("v2", 2), ("v3", 1), ((1, 2), 2),
])
def test_every_branch_and_scale_receives_gradients(rng, partition, groups):
    num_bases = 3
    for bits in (1, 2):
        tf.keras.backend.clear_session()
        model = groupnet_resnet(num_bases=num_bases, activation_bits=bits, partition=partition,
                                **SMALL)
        scales = _layers_of(model, BranchScales)
        assert len(scales) == groups
        branch_convs = [layer for layer in model.layers
                        if hasattr(layer, "kernel_quantizer") and layer.kernel_quantizer]
        assert len(branch_convs) == num_bases * 8  # 3 blocks x 2 convs + 2 downsamplings
        x = rng.uniform(0, 1, (4, 12, 12, 1)).astype("float32")
        labels = np.arange(4) % 3
        with tf.GradientTape() as tape:
            loss = tf.keras.losses.sparse_categorical_crossentropy(labels, model(x, training=True))
            loss = tf.reduce_mean(loss)
        grads = tape.gradient(loss, model.trainable_weights)
        missing = [w.name for w, g in zip(model.trainable_weights, grads)
                   if g is None or not np.any(g.numpy())]
        assert missing == [], f"W1A{bits}: no gradient for {missing}"
        for layer in scales:  # every lambda_i of every group
            grad = grads[[w is layer.scales for w in model.trainable_weights].index(True)]
            assert np.all(grad.numpy() != 0)
