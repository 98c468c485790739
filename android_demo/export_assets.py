"""Put a converted model and MNIST sample digits into the Android demo's assets.

    python android_demo/export_assets.py MODEL.tflite [--samples 20] [--assets DIR]
                                         [--mnist-dir DIR]

Writes, atomically, into ``android_demo/app/src/main/assets/`` (or ``--assets``):

- ``model.tflite``: the model, byte for byte;
- ``model_info.json``: its operator counts and binary shares
  (:func:`horq_keras.tflite.ops.summarize_ops`), input and output shapes, SHA-256, and
  the preprocessing the app applies (pixel / 255, as ``horq_keras.datasets.scale_images``);
- ``digits.bin``: ``N`` MNIST test digits, ``N x 28 x 28`` uint8 pixels, row-major, no
  header (``N * 784`` bytes);
- ``digits.json``: ``count``, ``height``, ``width``, the true ``labels``, the test-set
  ``indices`` and ``host_predictions``: the classes LCE's interpreter predicts for the
  digits on this machine, which the app compares with its own on-device predictions.

The digits are the first test digits of each class in turn (0, 1, ..., 9, 0, 1, ...).
The model must take one float32 image ``[1, 28, 28, 1]`` (convert without int8 inputs).
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np

from horq_keras.files import atomic_write_bytes, atomic_write_text
from horq_keras.tflite.ops import summarize_ops
from horq_keras.tflite.runner import LceInterpreter

#: Default asset directory of the app.
ASSETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "app", "src", "main", "assets")

#: File names the app reads (DigitClassifier.kt, DigitSamples.kt, ModelInfo.kt).
MODEL_FILE, INFO_FILE, DIGITS_FILE, DIGITS_INFO_FILE = (
    "model.tflite", "model_info.json", "digits.bin", "digits.json")


def select_digits(labels, count):
    """Indices of ``count`` digits: the first of each class in turn (0..9, 0..9, ...).

    Raises:
        ValueError: when ``count`` < 1 or the classes run out.
    """
    if count < 1:
        raise ValueError(f"`samples` must be >= 1; got {count}.")
    labels = np.asarray(labels)
    queues = {int(c): list(np.flatnonzero(labels == c)) for c in np.unique(labels)}
    chosen = []
    while len(chosen) < count:
        progressed = False
        for label in sorted(queues):
            if queues[label] and len(chosen) < count:
                chosen.append(int(queues[label].pop(0)))
                progressed = True
        if not progressed:
            raise ValueError(f"`samples` must be <= {len(labels)} (the digits given); got {count}.")
    return chosen


def _check_model(interpreter, height, width):
    shapes, types = interpreter.input_shapes, interpreter.input_types
    if len(shapes) != 1 or tuple(shapes[0]) != (1, height, width, 1) or types[0] != np.float32:
        raise ValueError(
            f"`model` must take one float32 input of shape (1, {height}, {width}, 1) (the demo "
            f"feeds pixel / 255); it takes {[tuple(s) for s in shapes]} of {[str(t) for t in types]}."
        )


def export_assets(model, images, labels, assets_dir=ASSETS_DIR, *, samples=20, source="MNIST test set"):
    """Write the app's assets (see the module docstring); return ``{file name: path}``.

    Args:
        model: path of a converted ``.tflite`` model, or its bytes.
        images: uint8 array ``(N, H, W)`` of digits (MNIST: 28 x 28, 0 = background).
        labels: int array ``(N,)`` of their classes.
        assets_dir: the app's asset directory (must exist).
        samples: how many digits to export.
        source: where the digits come from (recorded in ``digits.json``).

    Raises:
        ValueError: for a model that is not a TFLite flatbuffer or does not take the
            images, images that are not uint8 ``(N, H, W)``, labels that do not match.
    """
    if isinstance(model, (bytes, bytearray)):
        flatbuffer = bytes(model)
    else:
        with open(model, "rb") as file:
            flatbuffer = file.read()
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"`images` must be a uint8 array (N, height, width); got {images.dtype} {images.shape}.")
    if labels.shape != images.shape[:1]:
        raise ValueError(f"`labels` must have shape ({images.shape[0]},); got {labels.shape}.")
    if not os.path.isdir(assets_dir):
        raise ValueError(f"`assets_dir` must be an existing directory; got {assets_dir!r}.")
    try:
        ops = summarize_ops(flatbuffer)
    except ValueError as error:
        raise ValueError(f"`model`: {error}.") from None
    interpreter = LceInterpreter(flatbuffer)
    _check_model(interpreter, *images.shape[1:])

    chosen = select_digits(labels, samples)
    digits = images[chosen]
    scores = interpreter.predict([digits[..., np.newaxis].astype(np.float32) / 255.0])[0]
    info = {
        "source_name": os.path.basename(model) if isinstance(model, str) else None,
        "sha256": hashlib.sha256(flatbuffer).hexdigest(),
        "size_bytes": len(flatbuffer),
        "input_shape": list(interpreter.input_shapes[0]),
        "output_shape": list(interpreter.output_shapes[0]),
        "preprocessing": "float32 pixel / 255, background 0",
        **ops,
    }
    digits_info = {
        "count": len(chosen), "height": int(digits.shape[1]), "width": int(digits.shape[2]),
        "labels": [int(labels[i]) for i in chosen], "indices": chosen, "source": source,
        "host_predictions": [int(c) for c in np.argmax(scores, axis=-1)],
    }
    paths = {name: os.path.join(assets_dir, name)
             for name in (MODEL_FILE, INFO_FILE, DIGITS_FILE, DIGITS_INFO_FILE)}
    atomic_write_bytes(paths[MODEL_FILE], flatbuffer)
    atomic_write_text(paths[INFO_FILE], json.dumps(info, indent=2, sort_keys=True) + "\n")
    atomic_write_bytes(paths[DIGITS_FILE], np.ascontiguousarray(digits).tobytes())
    atomic_write_text(paths[DIGITS_INFO_FILE], json.dumps(digits_info, indent=2) + "\n")
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", metavar="MODEL.tflite", help="converted model (float32 28x28x1 input)")
    parser.add_argument("--samples", type=int, default=20, help="MNIST test digits to bundle (20)")
    parser.add_argument("--assets", default=ASSETS_DIR, help=f"asset directory ({ASSETS_DIR})")
    parser.add_argument("--mnist-dir", help="directory of the MNIST IDX files (default: see "
                                            "horq_keras.datasets.load_mnist)")
    args = parser.parse_args(argv)
    from horq_keras.datasets import load_mnist

    try:
        if not os.path.isfile(args.model):
            raise ValueError(f"`model` must be a .tflite file; {args.model!r} does not exist.")
        _, (x_test, y_test) = load_mnist(args.mnist_dir)
        os.makedirs(args.assets, exist_ok=True)
        paths = export_assets(args.model, x_test, y_test, args.assets, samples=args.samples)
    except (ValueError, OSError) as error:
        print(f"export_assets: error: {error}", file=sys.stderr)
        return 2
    for path in paths.values():
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
