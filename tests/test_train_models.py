"""Every registered model trains a few steps through ``horq-keras train`` and converts
with parity, on small real data of each source: MNIST IDX files, an image folder of
MNIST digits written as PNG files, and a TFDS-format dataset prepared offline."""

import json

import horq_keras  # noqa: F401
import pytest
from train_data import REAL_MNIST, mnist_folder, needs_mnist, tfds_digits

from horq_keras.cli import main
from horq_keras.training.registry import MODELS

# model -> (builder arguments that keep it small, data source)
SMALL = {
    "horq_lenet": (["order=2"], "idx"),
    "horq_resnet18": (["width=8", "order=2"], "folder"),
    "groupnet_resnet18": (["num_bases=2", "stage_filters=8,8,16,16"], "folder"),
    "groupnet_resnet34": (["num_bases=2", "stage_filters=4,4,8,8", "activation_bits=2"],
                          "folder"),
    "groupnet_resnet50": (["num_bases=2", "stage_filters=4,4,4,8"], "tfds"),
    "layerwise_resnet18": (["num_bases=2", "stage_filters=8,8,8,8"], "idx"),
    "binary_resnet18": (["stage_filters=8,8,16,16"], "tfds"),
    "groupnet_alexnet": (["num_bases=2", "fc_units=32"], "tfds"),
    "layerwise_alexnet": (["num_bases=2", "fc_units=32"], "folder"),
    "binary_alexnet": (["fc_units=32"], "idx"),
}


def test_every_registered_model_is_covered():
    assert sorted(SMALL) == sorted(MODELS)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    folder = mnist_folder(root / "folder", 96, 32)  # and one damaged file: 96 trained
    (folder / "train" / "0" / "zz_damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    found = {"idx": ["--data", f"idx:{REAL_MNIST}", "--limit-train", "96"],
             "folder": ["--data", f"folder:{folder}", "--image-size", "32",
                        "--skip-bad-images"]}
    try:
        name = tfds_digits(root / "tfds", 96, 32)
        found["tfds"] = ["--data", f"tfds:{name}", "--data-dir", str(root / "tfds"),
                         "--image-size", "32"]
    except ImportError:
        pass
    return found


@needs_mnist
@pytest.mark.parametrize("name", list(SMALL))
def test_trains_and_converts_with_parity(name, sources, tmp_path):
    model_args, source = SMALL[name]
    if source not in sources:
        pytest.skip("tensorflow-datasets is not installed (pip install 'horq-keras[tfds]')")
    out = tmp_path / name
    argv = ["train", "--model", name, *[a for arg in model_args for a in ("--model-arg", arg)],
            *sources[source], "--epochs", "1", "--batch-size", "32",
            "--limit-test", "32", "--output-dir", str(out)]
    rtol = 2e-3 if name == "horq_lenet" else None  # the parity tolerance reaches convert
    assert main(argv + (["--rtol", str(rtol)] if rtol else [])) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["converted"] and report["parity_ok"]
    assert report["conversion"]["parity"]["rtol"] == (rtol or 1e-5)
    assert report["conversion"]["parity"]["samples"] == 32
    assert report["conversion"]["parity"]["failed_layer"] is None  # every layer held
    assert report["op_counts"]["LceBconv2d"] >= 1
    assert (out / "model.tflite").stat().st_size > 0
    assert report["config"]["num_classes"] == 10
    damaged = [f"{sources['folder'][1][len('folder:'):]}/train/0/zz_damaged.png"]
    assert report["skipped_images"] == (damaged if source == "folder" else [])

