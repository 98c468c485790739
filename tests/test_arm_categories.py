"""How ``benchmarks/arm_emulated.py`` files a converted model's operators: HORQ's float work
(|R|, its means, the box filter, the β multiply, the residual update) apart from a
network's own float operators such as global average pooling. Needs no emulator."""

import pathlib
import sys
from collections import Counter

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.mark.parametrize("beta_form", ["pixel", "sample"])
def test_beta_means_are_horq_work_and_global_pooling_is_not(beta_form):
    import arm_emulated
    import tensorflow as tf
    from horq_keras.tflite.graph import read_graph
    from _models import convert, stack_model

    stack = stack_model("horq2", 8, 16, beta_form=beta_form)
    pooled = tf.keras.layers.GlobalAveragePooling2D()(stack.output)
    flatbuffer = convert(tf.keras.Model(stack.input, pooled), "horq2")
    graph = read_graph(flatbuffer)

    means = Counter(arm_emulated.category(op, graph)
                    for op in graph.operators if op.name == "MEAN")
    # Per layer and base one mean of |R| (pixel: over the channels; sample: over height and
    # width, then over the channels); the pooling's own mean is the network's.
    per_base = 1 if beta_form == "pixel" else 2
    assert means == {"HORQ float overhead": 4 * 2 * per_base, "other": 1}
    table = arm_emulated.tabulate(flatbuffer, {arm_emulated.signature(op, graph): 1
                                               for op in graph.operators})
    assert table["by_op"]["MEAN (pooling)"] == 1
    assert table["by_op"]["MEAN"] == 4 * 2 * per_base
    assert table["by_category"]["binary conv"] == 4 * 2  # two LceBconv2d per layer


def test_groupnet_w1a2_is_counted_as_convert_deploys_it():
    """2-bit activations become binary bit planes (two LceBconv2d per conv), as in
    ``horq_keras.converters.convert``; LCE alone would leave float convolutions."""
    import arm_emulated
    from horq_keras.groupnet import groupnet_resnet18
    from horq_keras.tflite.graph import read_graph

    def build():
        return groupnet_resnet18(num_bases=1, activation_bits=2, stage_filters=(8, 8, 16, 16),
                                 input_shape=(32, 32, 3), num_classes=4)

    names = Counter(op.name for op in read_graph(arm_emulated._convert(None, build)).operators)
    binary_convs = sum(layer.__class__.__name__ == "QuantConv2D"
                       and getattr(layer.kernel_quantizer, "precision", None) == 1
                       for layer in build().submodules)
    assert binary_convs > 0
    assert names["LceBconv2d"] == 2 * binary_convs


def test_layer_row_sets_counts_beside_the_ideal_kernels():
    import arm_emulated

    # 28x28x256 -> 256, 3x3: 462,422,016 MACs; ideal binary 3 per 128, float 1 per 4.
    macs = 28 * 28 * 256 * 9 * 256
    row = arm_emulated.layer_row(macs, binary=16_000_000, floating=144_000_000)
    assert row["binary_ideal"] == 3 * macs / 128 == 10_838_016
    assert row["binary_efficiency"] == pytest.approx(10_838_016 / 16_000_000)
    assert row["float_ideal"] == macs / 4
    assert row["float_efficiency"] == pytest.approx(macs / 4 / 144_000_000)
    assert row["float_per_binary"] == 9.0
    without_float = arm_emulated.layer_row(macs, binary=16_000_000, floating=None)
    assert without_float["float_per_binary"] is None and without_float["float_ideal"] is None


def test_layer_rows_pair_binary_and_float_convs_of_one_shape():
    import arm_emulated
    from horq_keras.tflite.graph import read_graph
    from _models import convert, stack_model

    flatbuffers = {kind: convert(stack_model(kind, 8, 96), kind) for kind in ("float", "bconv")}
    counts = {}
    for kind, flatbuffer in flatbuffers.items():
        graph = read_graph(flatbuffer)
        counts.update({arm_emulated.signature(op, graph): 1000 if op.name == "LceBconv2d"
                       else 9000 for op in graph.operators})
    rows = arm_emulated.layer_rows(flatbuffers, counts)
    # Four layers of one shape, 96 channels (not a multiple of 32 or 64): the last writes
    # floats, the others their signs bitpacked for the next layer.
    assert sorted(rows) == ["8x8x96 -> 8x8x96, 3x3", "8x8x96 -> 8x8x96, 3x3, bitpacked output"]
    for row in rows.values():
        assert row["macs"] == 8 * 8 * 96 * 9 * 96
        assert (row["binary"], row["float"], row["float_per_binary"]) == (1000, 9000, 9.0)
