"""Smoke test of the aarch64 emulation (benchmarks/arm_emulated.py): the NEON stand-in of
LCE's binary kernels matches NumPy, and a TFLite operator's instruction count under
qemu-aarch64 is positive and the same on two runs. Skipped, naming the set-up command,
where scripts/setup_arm_emulation.sh has not been run."""

import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
import _arm_emulator as emulator  # noqa: E402

pytestmark = pytest.mark.skipif(emulator.missing() is not None,
                                reason=str(emulator.missing()))


def test_pack_bits_reference_round_trips():
    x = np.random.default_rng(0).standard_normal((3, 2, 70)).astype(np.float32)
    words = emulator.pack_bits(x)
    assert words.shape == (3, 2, 2)
    assert int(words[0, 0, 0]) & 1 == (x[0, 0, 0] < 0)
    assert np.array_equal(emulator.unpack_bits(words, 70), np.where(x < 0, -1.0, 1.0))


def test_neon_kernels_match_numpy_and_counts_repeat(tmp_path):
    # Each call checks the emulated kernel's output against the NumPy reference.
    counts = [emulator.neon_bconv(6, 5, 70, 6, (3, 3), (2, 1), True, packed,
                                  repeats=1, workdir=tmp_path, rng=np.random.default_rng(1))
              for packed in (False, False, True)]
    assert counts[0] == counts[1] > 0
    # The signs are packed in the store (no pass over a float output): no dearer than floats.
    assert 0 < counts[2] <= counts[0]
    assert emulator.neon_quantize(4, 3, 130, repeats=1, workdir=tmp_path,
                                  rng=np.random.default_rng(2)) > 0
    assert emulator.neon_dequantize(4, 3, 130, repeats=1, workdir=tmp_path,
                                    rng=np.random.default_rng(3)) > 0


@pytest.mark.parametrize("height, width, channels, filters, kernel, strides, same", [
    (5, 7, 3, 13, (3, 3), (1, 1), True),       # channels < 64, filters not 8k, odd pixels
    (6, 5, 70, 8, (3, 3), (2, 1), False),      # two words per pixel, valid padding, stride
    (4, 5, 130, 17, (3, 3), (1, 2), True),     # three words per pixel: steps join positions
    (7, 7, 192, 9, (3, 3), (2, 2), True),      # three words, stride 2 both ways
    (5, 4, 64, 24, (1, 1), (1, 1), False),     # 1x1, one word per pixel
    (6, 6, 100, 7, (1, 1), (2, 2), False),     # 1x1 strided
    (3, 3, 128, 8, (3, 3), (1, 1), True),      # two words, one step per position
    (4, 4, 33, 70, (3, 1), (1, 1), True),      # non-square kernel, > 64 filters (2 words out)
    (5, 6, 64, 16, (2, 2), (1, 1), False),     # one word: two pixels per register, 4 positions
    (6, 5, 40, 9, (2, 3), (1, 1), True),       # one word, 6 positions, 'same' padding
    (9, 9, 64, 20, (1, 1), (2, 2), False),     # 1x1 stride 2, one word: 25 pixels (blocks of 4)
    (9, 5, 200, 12, (1, 1), (2, 2), False),    # 1x1 stride 2, four words (200 channels)
    (6, 6, 256, 72, (1, 1), (2, 2), True),     # 1x1 stride 2, four words, 9 groups, 'same'
    (5, 5, 130, 8, (1, 1), (1, 1), True),      # 1x1 with three words: the step table
])
@pytest.mark.parametrize("packed_output", [False, True])
def test_neon_bconv_matches_numpy_on_every_shape(tmp_path, height, width, channels, filters,
                                                 kernel, strides, same, packed_output):
    # neon_bconv raises if the emulated kernel's output differs from the NumPy reference.
    count = emulator.neon_bconv(height, width, channels, filters, kernel, strides, same,
                                packed_output, repeats=1, workdir=tmp_path,
                                rng=np.random.default_rng(channels))
    assert count > 0


@pytest.mark.parametrize("size, channels, filters, kernel, stride, bound", [
    (8, 256, 256, 3, 1, 2.0),    # 256 -> 256 channels 3x3
    (16, 64, 64, 3, 1, 1.75),    # one word per pixel: two pixels per register
    (28, 128, 256, 1, 2, 2.0),   # 1x1 stride 2: filters held in registers
])
def test_neon_bconv_reaches_half_of_the_popcount_limit(tmp_path, size, channels, filters,
                                                         kernel, stride, bound):
    # The kernel's count within `bound` x the ideal kernel's (EOR, CNT and accumulate per
    # 128 binary MACs).
    same = kernel > 1
    count = emulator.neon_bconv(size, size, channels, filters, (kernel, kernel),
                                (stride, stride), same, False, repeats=1, workdir=tmp_path,
                                rng=np.random.default_rng(5))
    out = emulator.conv_output_size(size, kernel, stride, same)
    ideal = emulator.ideal_binary_instructions(out * out * filters * kernel * kernel * channels)
    assert ideal < count < bound * ideal


def test_neon_bconv_reference_is_a_convolution():
    rng = np.random.default_rng(4)
    x = np.where(rng.random((5, 5, 3)) < 0.5, -1.0, 1.0).astype(np.float32)
    w = np.where(rng.random((2, 3, 3, 3)) < 0.5, -1.0, 1.0).astype(np.float32)
    out = emulator.binary_conv_reference(x, w, np.ones(2), np.zeros(2), (1, 1), True)
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)), constant_values=1.0)
    assert out[0, 0, 1] == np.sum(padded[:3, :3] * w[1])
    assert out[4, 2, 0] == np.sum(padded[4:7, 2:5] * w[0])


def test_tflite_op_count_is_positive_and_deterministic(tmp_path):
    import horq_keras  # noqa: F401  (Keras 2 before TensorFlow is used)
    import tensorflow as tf

    inputs = tf.keras.Input((6, 6, 8))
    model = tf.keras.Model(inputs, tf.keras.layers.Conv2D(8, 3, padding="same")(inputs))
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    # Two guest processes (each starts Python, ~2 G instructions: most of the time). The same
    # list of models gives the same counts; within one process the Python loop around
    # invoke() is specialized after the first models, which moves a count by ~500.
    counts = [emulator.tflite_counts([flatbuffer], repeats=1, workdir=tmp_path / str(run))[0]
              for run in range(2)]
    assert counts[0] == counts[1] > 0
    # 6x6x8 -> 8 channels, 3x3: 3456 multiply-adds; a NEON kernel needs far fewer than
    # 100 instructions per multiply-add, and more than 1 per 4 (4 lanes per instruction).
    assert 3456 / 4 < counts[0] < 100 * 3456
