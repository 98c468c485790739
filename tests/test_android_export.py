"""android_demo/export_assets.py: the model, its operator summary and sample digits for the app."""

import importlib.util
import json
import os

import larq_compute_engine as lce
import numpy as np
import pytest
from test_bench import bench_models  # noqa: F401

from horq_keras.tflite.ops import summarize_ops

_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "android_demo", "export_assets.py")
_spec = importlib.util.spec_from_file_location("export_assets", _SCRIPT)
export_assets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(export_assets)


def _digits(rng, count=60):
    """Digit-like images: a bright square per class at a class-dependent place, on 0."""
    labels = rng.permutation(np.arange(count) % 10)
    images = np.zeros((count, 28, 28), np.uint8)
    for image, label in zip(images, labels, strict=True):
        row, col = 4 + 2 * (label // 5) * 5, 4 + 4 * (label % 5)
        image[row:row + 8, col:col + 6] = rng.integers(128, 256, size=(8, 6))
    return images, labels


def test_select_digits_takes_classes_in_turn():
    labels = np.array([3, 1, 1, 0, 3, 2, 0, 1])
    # first 0 (index 3), first 1 (1), first 2 (5), first 3 (0), then second 0 (6), ...
    assert export_assets.select_digits(labels, 7) == [3, 1, 5, 0, 6, 2, 4]
    assert export_assets.select_digits(labels, 8) == [3, 1, 5, 0, 6, 2, 4, 7]
    with pytest.raises(ValueError, match="`samples` must be <= 8"):
        export_assets.select_digits(labels, 9)
    with pytest.raises(ValueError, match="`samples` must be >= 1"):
        export_assets.select_digits(labels, 0)


def test_export_writes_model_summary_and_digits(bench_models, tmp_path, rng):  # noqa: F811
    images, labels = _digits(rng)
    paths = export_assets.export_assets(bench_models["binary"], images, labels, str(tmp_path),
                                        samples=13)
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["model.tflite", "model_info.json", "digits.bin", "digits.json"])  # no temp files left
    with open(bench_models["binary"], "rb") as file:
        flatbuffer = file.read()
    assert (tmp_path / "model.tflite").read_bytes() == flatbuffer

    info = json.loads((tmp_path / "model_info.json").read_text())
    assert {key: info[key] for key in summarize_ops(flatbuffer)} == summarize_ops(flatbuffer)
    assert info["num_binary_convs"] == 1 and info["binary_conv_share"] == pytest.approx(1 / 3)
    assert info["input_shape"] == [1, 28, 28, 1] and info["output_shape"] == [1, 10]
    assert info["source_name"] == "binary.tflite" and info["size_bytes"] == len(flatbuffer)

    meta = json.loads((tmp_path / "digits.json").read_text())
    chosen = export_assets.select_digits(labels, 13)
    assert meta["indices"] == chosen and meta["count"] == 13
    assert meta["labels"] == labels[chosen].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]
    assert (meta["height"], meta["width"]) == (28, 28)
    raw = (tmp_path / "digits.bin").read_bytes()
    assert len(raw) == 13 * 28 * 28
    np.testing.assert_array_equal(np.frombuffer(raw, np.uint8).reshape(13, 28, 28), images[chosen])
    # The app compares its predictions with these: LCE's interpreter on pixel / 255.
    scores = lce.testing.Interpreter(flatbuffer).predict(
        images[chosen][..., None].astype(np.float32) / 255.0)
    assert meta["host_predictions"] == np.argmax(scores, axis=-1).tolist()
    assert paths["digits.bin"] == str(tmp_path / "digits.bin")


def test_export_rejects_bad_inputs(bench_models, tmp_path, rng):  # noqa: F811
    images, labels = _digits(rng, count=20)
    with pytest.raises(ValueError, match=r"`model` must take one float32 input of shape \(1, 32, 32, 1\)"):
        export_assets.export_assets(bench_models["binary"], np.zeros((20, 32, 32), np.uint8),
                                    labels, str(tmp_path))
    with pytest.raises(ValueError, match="`images` must be a uint8 array"):
        export_assets.export_assets(bench_models["binary"], images.astype(np.float32), labels,
                                    str(tmp_path))
    with pytest.raises(ValueError, match=r"`labels` must have shape \(20,\)"):
        export_assets.export_assets(bench_models["binary"], images, labels[:5], str(tmp_path))
    with pytest.raises(ValueError, match="`model`: not a TFLite flatbuffer"):
        export_assets.export_assets(b"\x00" * 64, images, labels, str(tmp_path))
    with pytest.raises(ValueError, match="`assets_dir` must be an existing directory"):
        export_assets.export_assets(bench_models["binary"], images, labels, str(tmp_path / "nope"))
    assert os.listdir(tmp_path) == []  # nothing written on errors


def test_export_script_with_real_mnist(bench_models, tmp_path, capsys):  # noqa: F811
    mnist_dir = os.environ.get("HORQ_KERAS_MNIST_DIR") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "mnist")
    if not os.path.isfile(os.path.join(mnist_dir, "t10k-labels-idx1-ubyte")):
        pytest.skip(f"no MNIST IDX files in {mnist_dir} (make data)")
    from horq_keras.datasets import load_mnist

    assets = tmp_path / "assets"
    status = export_assets.main([bench_models["binary"], "--samples", "10", "--assets", str(assets),
                                 "--mnist-dir", mnist_dir])
    assert status == 0 and "digits.bin" in capsys.readouterr().out
    _, (x_test, y_test) = load_mnist(mnist_dir)
    meta = json.loads((assets / "digits.json").read_text())
    assert meta["labels"] == list(range(10))
    assert meta["indices"] == [int(np.flatnonzero(y_test == c)[0]) for c in range(10)]
    np.testing.assert_array_equal(
        np.frombuffer((assets / "digits.bin").read_bytes(), np.uint8).reshape(10, 28, 28),
        x_test[meta["indices"]])
    assert export_assets.main([str(tmp_path / "missing.tflite"), "--assets", str(assets)]) == 2
    assert "`model` must be a .tflite file" in capsys.readouterr().err
