"""Group-Net model builders: layer/branch/parameter counts against the reference ResNets,
stems, summary MACs, save/load, a few training steps, and bad arguments."""

import contextlib
import io

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from helpers import randomize_batch_norms

from horq_keras.groupnet import (
    BranchScales,
    binary_alexnet,
    binary_resnet18,
    groupnet_alexnet,
    groupnet_resnet,
    groupnet_resnet18,
    groupnet_resnet34,
    groupnet_resnet50,
    layerwise_alexnet,
    layerwise_resnet18,
)

TINY = {"stage_blocks": (1, 1), "stage_filters": (4, 8), "input_shape": (10, 10, 1),
        "num_classes": 3}

#: torchvision's parameter counts of ResNet-18/34/50 (1000 classes).
TORCHVISION_PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032}


def reference_resnet(depth):
    """torchvision ResNet layer shapes: conv params of the body (every conv but conv1),
    branch-conv count, and BN params, computed from the architecture."""
    blocks, bottleneck = {18: ((2, 2, 2, 2), False), 34: ((3, 4, 6, 3), False),
                          50: ((3, 4, 6, 3), True)}[depth]
    expansion = 4 if bottleneck else 1
    body = convs = 0
    bn = 2 * 64  # bn1
    channels = 64
    for stage, (count, width) in enumerate(zip(blocks, (64, 128, 256, 512))):
        for index in range(count):
            stride = 2 if stage > 0 and index == 0 else 1
            out = width * expansion
            if bottleneck:
                shapes = [(1, channels, width), (3, width, width), (1, width, out)]
            else:
                shapes = [(3, channels, width), (3, width, width)]
            if stride != 1 or channels != out:
                shapes.append((1, channels, out))
            body += sum(k * k * c_in * c_out for k, c_in, c_out in shapes)
            bn += sum(2 * c_out for _, _, c_out in shapes)
            convs += len(shapes)
            channels = out
    stem = 7 * 7 * 3 * 64
    fc = channels * 1000 + 1000
    return {"body": body, "convs": convs, "total": stem + bn + body + fc}


def branch_convs(model):
    return [layer for layer in model.layers if isinstance(layer, lq.layers.QuantConv2D)]


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_reference_shapes_reproduce_torchvision_counts(depth):
    assert reference_resnet(depth)["total"] == TORCHVISION_PARAMS[depth]


@pytest.mark.parametrize("depth,builder,num_bases", [
    (18, groupnet_resnet18, 2), (34, groupnet_resnet34, 1), (50, groupnet_resnet50, 1),
])
def test_binary_params_are_bases_times_reference_body(depth, builder, num_bases):
    tf.keras.backend.clear_session()
    model = builder(num_bases=num_bases, input_shape=(32, 32, 3), num_classes=10)
    reference = reference_resnet(depth)
    convs = branch_convs(model)
    assert len(convs) == num_bases * reference["convs"]  # 19, 36, 52 per base
    assert sum(int(np.prod(c.kernel.shape)) for c in convs) == num_bases * reference["body"]
    assert all(c.kernel_quantizer.precision == 1 for c in convs)
    blocks = {18: 8, 34: 16, 50: 16}[depth]
    assert len([l for l in model.layers if isinstance(l, BranchScales)]) == (
        blocks if num_bases > 1 else 0)
    assert model.output_shape == (None, 10)


@pytest.mark.parametrize("partition,groups", [
    ("layerwise", 19), ("v1", 8), ("v2", 4), ("v3", 1), ((1, 3, 4), 3),
])
def test_resnet18_partitions_layer_and_branch_counts(partition, groups):
    # ResNet-18's block structure at 1/16 of its width: counts do not depend on width.
    tf.keras.backend.clear_session()
    model = groupnet_resnet(stage_blocks=(2, 2, 2, 2), stage_filters=(4, 8, 16, 32),
                            num_bases=3, partition=partition, input_shape=(16, 16, 3),
                            num_classes=10)
    scales = [layer for layer in model.layers if isinstance(layer, BranchScales)]
    assert len(scales) == groups
    assert sum(layer.scales.shape[0] for layer in scales) == 3 * groups
    assert len(branch_convs(model)) == 3 * 19
    # Group-wise branches carry the residual adds (8 per base); layer-wise shares 8.
    adds = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Add)]
    assert len(adds) == (8 if partition == "layerwise" else 3 * 8)


def test_stems_small_and_imagenet():
    small = groupnet_resnet(stage_blocks=(1,), stage_filters=(8,), num_bases=1,
                            input_shape=(28, 28, 1), num_classes=10)
    stem = small.get_layer("stem_conv_float")
    assert stem.kernel_size == (3, 3) and stem.strides == (1, 1)
    assert "stem_pool" not in [layer.name for layer in small.layers]
    assert small.get_layer("head_bn").output_shape == (None, 28, 28, 8)

    large = groupnet_resnet(stage_blocks=(1,), stage_filters=(8,), num_bases=1,
                            input_shape=(224, 224, 3), num_classes=10)
    stem = large.get_layer("stem_conv_float")
    assert stem.kernel_size == (7, 7) and stem.strides == (2, 2)
    assert large.get_layer("stem_pool").output_shape == (None, 56, 56, 64)
    # First and last layers are full precision (plain Keras layers, not quantized).
    for model in (small, large):
        assert type(model.get_layer("stem_conv_float")) is tf.keras.layers.Conv2D
        assert type(model.get_layer("logits_float")) is tf.keras.layers.Dense
        # No nonlinearity between the last BN and the classifier.
        assert model.get_layer("pool").input._keras_history.layer.name == "head_bn"


def test_include_top_false_ends_at_the_head_bn():
    model = groupnet_resnet(num_bases=2, include_top=False, **TINY)
    assert model.layers[-1].name == "head_bn"
    assert model.output_shape == (None, 5, 5, 8)


def _alexnet_binary_params(input_side, fc_units, small):
    """conv2..fc7 kernel params of AlexNet (96-256-384-384-256 widths) for a square input."""
    if small:  # 3x3/1 stem, 2x2 pools: side -> side/2 (stem) -> /2 (conv2) -> /2 (conv5)
        fc6_side = input_side // 8
    else:  # 11x11/4 "same" stem and 3x3/2 pools
        side = -(-input_side // 4)
        for _ in range(3):
            side = (side - 3) // 2 + 1
        fc6_side = side
    shapes = [(5, 96, 256), (3, 256, 384), (3, 384, 384), (3, 384, 256)]
    params = sum(k * k * c_in * c_out for k, c_in, c_out in shapes)
    return params + fc6_side**2 * 256 * fc_units + fc_units * fc_units, fc6_side


@pytest.mark.parametrize("input_shape", [(32, 32, 3), (224, 224, 3)])
def test_alexnet_counts(input_shape):
    tf.keras.backend.clear_session()
    model = groupnet_alexnet(num_bases=2, fc_units=32, input_shape=input_shape, num_classes=10)
    params, fc6_side = _alexnet_binary_params(input_shape[0], 32, input_shape[0] <= 64)
    convs = branch_convs(model)
    assert len(convs) == 2 * 6
    assert sum(int(np.prod(c.kernel.shape)) for c in convs) == 2 * params
    assert model.get_layer("group3_base1_fc6").kernel.shape == (fc6_side, fc6_side, 256, 32)
    # Default partition "v2": the paper's groups of two consecutive layers.
    scales = [layer.name for layer in model.layers if isinstance(layer, BranchScales)]
    assert scales == ["group1_scales", "group2_scales", "group3_scales"]
    assert model.get_layer("group1_base2_conv3").input.shape[1] == (
        input_shape[0] // 4 if input_shape[0] <= 64 else 27 // 2)  # pool inside the branch


def test_alexnet_baselines_and_bad_partition():
    layerwise = layerwise_alexnet(num_bases=2, fc_units=8, input_shape=(16, 16, 1), num_classes=3)
    assert len([l for l in layerwise.layers if isinstance(l, BranchScales)]) == 6
    direct = binary_alexnet(fc_units=8, input_shape=(16, 16, 1), num_classes=3)
    assert len(branch_convs(direct)) == 6
    assert not any(isinstance(l, BranchScales) for l in direct.layers)
    with pytest.raises(ValueError, match="cover the network's 6 binary layers exactly"):
        groupnet_alexnet(partition=(2, 2), fc_units=8, input_shape=(16, 16, 1))
    with pytest.raises(ValueError, match="too small for AlexNet"):
        groupnet_alexnet(fc_units=8, input_shape=(6, 6, 1))


def test_resnet18_baselines_are_named_variants():
    for builder, scales in ((layerwise_resnet18, 19), (binary_resnet18, 0)):
        tf.keras.backend.clear_session()
        model = builder(input_shape=(16, 16, 3), num_classes=10)
        assert len([l for l in model.layers if isinstance(l, BranchScales)]) == scales
    assert binary_resnet18(input_shape=(16, 16, 3)).name == "groupnet_resnet18_direct_k1_w1a1"


@pytest.mark.parametrize("bits,precision", [(1, 1), (2, 2), (32, 32)])
def test_summary_reports_every_branch_macs(bits, precision):
    model = groupnet_resnet(num_bases=3, activation_bits=bits, partition="v1", **TINY)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        lq.models.summary(model)
    table = printed.getvalue()
    total = 0
    for conv in branch_convs(model):
        k_h, k_w, c_in, c_out = conv.kernel.shape
        _, out_h, out_w, _ = conv.output_shape
        macs = k_h * k_w * c_in * c_out * out_h * out_w
        total += macs
        profile = lq.models.LayerProfile(conv)
        assert profile.op_count("mac", precision=precision) == macs
        assert conv.name in table
    # 3 bases x (stage 1: 2 convs 3x3 4->4 at 10x10; stage 2: 3x3 4->8, 3x3 8->8, 1x1 4->8 at 5x5)
    assert total == 3 * (2 * 9 * 16 * 100 + (9 * 32 + 9 * 64 + 32) * 25)
    if precision == 32:  # the float stem (3x3, 1 -> 4 at 10x10) and classifier (8 -> 3) too
        total += 9 * 4 * 100 + 8 * 3
    assert lq.models.ModelProfile(model).op_count("mac", bitwidth=precision) == total


def _randomize_batch_norm(model, rng):
    randomize_batch_norms(model, rng)
    for layer in model.layers:
        if isinstance(layer, BranchScales):
            layer.set_weights([rng.uniform(0.2, 1.0, layer.scales.shape)])


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_save_and_load_round_trip(rng, tmp_path, suffix):
    model = groupnet_resnet(num_bases=2, activation_bits=2, partition="layerwise",
                            per_channel_weights=False, **TINY)
    _randomize_batch_norm(model, rng)
    x = rng.uniform(0, 1, (3, 10, 10, 1)).astype("float32")
    path = tmp_path / f"model{suffix}"
    model.save(path)
    restored = tf.keras.models.load_model(path)
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    conv = restored.get_layer("stage1_block1_conv1_base2")
    assert conv.input_quantizer.precision == 2 and conv.kernel_quantizer.per_channel is False
    np.testing.assert_array_equal(restored.get_layer("stage1_block1_conv1_scales").get_weights()[0],
                                  model.get_layer("stage1_block1_conv1_scales").get_weights()[0])


def test_one_bit_model_round_trips_through_config(rng):
    model = groupnet_alexnet(num_bases=2, fc_units=8, input_shape=(16, 16, 1), num_classes=3)
    _randomize_batch_norm(model, rng)
    clone = tf.keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    x = rng.uniform(0, 1, (2, 16, 16, 1)).astype("float32")
    np.testing.assert_allclose(clone(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("partition,bits", [("v1", 1), ("layerwise", 2)])
def test_a_few_fit_steps_train_every_branch_and_scale(rng, partition, bits):
    tf.keras.utils.set_random_seed(0)
    model = groupnet_resnet(num_bases=2, activation_bits=bits, partition=partition, **TINY)
    model.compile(tf.keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    x = rng.uniform(0, 1, (32, 10, 10, 1)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype("int32") + (x[:, :5].mean(axis=(1, 2, 3)) > 0.5)
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    assert history["loss"][-1] < history["loss"][0]
    unchanged = [w.name for w, old in zip(model.trainable_weights, before)
                 if np.array_equal(w.numpy(), old)]
    assert unchanged == []


@pytest.mark.parametrize("kwargs,message", [
    ({"num_bases": 0}, r"`num_bases` must be an integer >= 1"),
    ({"num_bases": 2.5}, r"`num_bases` must be an integer >= 1"),
    ({"activation_bits": 0}, r"`activation_bits` must be one of \(1, 2, 3, 4, 5, 6, 7, 8, 32\)"),
    ({"activation_bits": 16}, r"`activation_bits` must be one of"),
    ({"partition": (1, 2)}, r"cover the network's 2 residual blocks exactly.*add up to 3"),
    ({"partition": "v5"}, r"`partition` must be one of"),
    ({"input_shape": (10, 10)}, r"`input_shape` must be \(height, width, channels\)"),
    ({"num_classes": 0}, r"`num_classes` must be an integer >= 1"),
    ({"stage_filters": (4,)}, r"one entry per stage; got 2 and 1"),
    ({"stage_blocks": (1, 0)}, r"`stage_blocks` must be an integer >= 1"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        groupnet_resnet(**{**TINY, **kwargs})


def test_weight_scaling_flag_must_be_a_bool():
    with pytest.raises(TypeError, match="`per_channel_weights` must be True or False"):
        groupnet_resnet(**TINY, per_channel_weights="channel")


@pytest.mark.parametrize("builder", [groupnet_resnet18, groupnet_alexnet])
def test_named_builders_are_keyword_only_and_validate(builder):
    with pytest.raises(TypeError):
        builder(5)
    with pytest.raises(ValueError, match="`num_bases`"):
        builder(num_bases=0, input_shape=(16, 16, 3))
    with pytest.raises(ValueError, match="`activation_bits`"):
        builder(activation_bits=3.5, input_shape=(16, 16, 3))
