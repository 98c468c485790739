"""Argument checks at construction: finite positive clip values, integral bits and orders
(NumPy integers accepted, floats and bools refused), the pad values LCE can lower, and
clear errors for ``padding=None`` and a float16 ``dtype``."""

import json
import math

import numpy as np
import pytest

from horq_keras.groupnet import BinaryWeight, UniformActivation, groupnet_resnet
from horq_keras.layers import BitPlaneConv2D, HORQConv2D, HORQDense
from horq_keras.quantizers import ResidualSign

BAD_CLIP = [math.inf, -math.inf, math.nan, 0.0, -1.0, "abc", True, [1.0]]


@pytest.mark.parametrize("value", BAD_CLIP)
@pytest.mark.parametrize("make", [
    lambda v: UniformActivation(2, clip_value=v),
    lambda v: UniformActivation(1, clip_value=v),
    lambda v: BinaryWeight(clip_value=v),
    lambda v: ResidualSign(2, clip_value=v),
    lambda v: HORQConv2D(4, 3, clip_value=v),
    lambda v: HORQDense(4, clip_value=v),
    lambda v: BitPlaneConv2D(4, 3, clip_value=v),
], ids=["uniform2", "uniform1", "binary_weight", "residual_sign", "conv", "dense", "bitplane"])
def test_clip_value_must_be_finite_and_positive(make, value):
    with pytest.raises(ValueError, match="`clip_value` must be a finite number > 0"):
        make(value)


def test_clip_value_none_and_numpy_floats():
    assert ResidualSign(2, clip_value=None).clip_value is None
    assert HORQConv2D(4, 3, clip_value=np.float32(0.5)).clip_value == 0.5
    assert UniformActivation(2, clip_value=np.float32(2)).clip_value == 2.0
    with pytest.raises(ValueError, match="`clip_value` must be a finite number > 0 \\("):
        UniformActivation(2, clip_value=None)


@pytest.mark.parametrize("value", [2.0, np.float64(2.0), True, np.bool_(True), "2", 0, -1, 3.5])
@pytest.mark.parametrize("make, argument", [
    (lambda v: ResidualSign(order=v), "order"),
    (lambda v: HORQConv2D(4, 3, order=v), "order"),
    (lambda v: HORQDense(4, order=v), "order"),
    (lambda v: UniformActivation(v), "bits"),
    (lambda v: BitPlaneConv2D(4, 3, bits=v), "bits"),
], ids=["residual_sign", "conv", "dense", "uniform", "bitplane"])
def test_integral_arguments_refuse_floats_and_bools(make, argument, value):
    with pytest.raises(ValueError, match=f"`{argument}` must be"):
        make(value)


def test_numpy_integers_are_integers():
    for kind in (np.int8, np.int32, np.int64, np.uint8):
        conv = HORQConv2D(4, 3, order=kind(3))
        assert conv.order == 3 and type(conv.order) is int
        assert json.loads(json.dumps(conv.get_config()))["order"] == 3
        assert UniformActivation(kind(2)).bits == 2 and type(UniformActivation(kind(2)).bits) is int
        assert BitPlaneConv2D(4, 3, bits=kind(3)).bits == 3
    model = groupnet_resnet(stage_blocks=(1,), stage_filters=(4,), num_bases=np.int64(2),
                            activation_bits=np.int32(2), input_shape=(8, 8, 1), num_classes=2)
    assert model.name.endswith("_w1a2")
    with pytest.raises(ValueError, match="`activation_bits` must be one of"):
        groupnet_resnet(stage_blocks=(1,), activation_bits=2.0, input_shape=(8, 8, 1))


@pytest.mark.parametrize("value", [0.5, -1.0, 2.0, math.nan, math.inf, "abc", None, True])
def test_pad_values_lce_can_lower(value):
    with pytest.raises(ValueError, match="`pad_values` must be 1.0 .* or 0.0"):
        HORQConv2D(4, 3, padding="same", pad_values=value)


def test_pad_values_allowed():
    assert HORQConv2D(4, 3, pad_values=0).pad_values == 0.0
    assert HORQConv2D(4, 3, pad_values=np.float32(1)).pad_values == 1.0
    assert BitPlaneConv2D(4, 3, padding="same", pad_values=0.5).pad_values == 0.5
    with pytest.raises(ValueError, match="`pad_values` must be a finite number"):
        BitPlaneConv2D(4, 3, padding="same", pad_values="abc")


@pytest.mark.parametrize("make", [lambda p: HORQConv2D(4, 3, padding=p),
                                  lambda p: BitPlaneConv2D(4, 3, padding=p)])
@pytest.mark.parametrize("padding", [None, "full", 1])
def test_padding_must_be_valid_or_same(make, padding):
    with pytest.raises(ValueError, match="`padding` must be 'valid' or 'same'; got"):
        make(padding)


@pytest.mark.parametrize("dtype", ["float16", "mixed_float16", "bfloat16", "float64"])
@pytest.mark.parametrize("make", [lambda d: HORQConv2D(4, 3, dtype=d),
                                  lambda d: HORQDense(4, dtype=d),
                                  lambda d: BitPlaneConv2D(4, 3, dtype=d)],
                         ids=["conv", "dense", "bitplane"])
def test_binary_layers_compute_in_float32(make, dtype):
    with pytest.raises(ValueError, match="`dtype` of .* must be float32"):
        make(dtype)


def test_float32_dtype_allowed():
    assert HORQConv2D(4, 3, dtype="float32").compute_dtype == "float32"
    assert HORQDense(4, dtype=None).compute_dtype == "float32"
