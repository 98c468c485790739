"""Every public layer and quantizer of the package, and a Group-Net builder's model, save
as .h5, SavedModel and .keras and reload, with the same outputs, in a fresh process that
only ran ``import horq_keras`` (no ``custom_objects``, no other import of this package).
The other builders (``horq_lenet``, the ResNets, AlexNet) compose the same objects."""

import importlib
import json
import subprocess
import sys
import textwrap

import larq as lq
import numpy as np
import tensorflow as tf

from horq_keras.groupnet import (
    BinaryWeight,
    UniformActivation,
    binary_group,
    conv_unit,
    groupnet_resnet,
)
from horq_keras.layers import BitPlaneConv2D, HORQConv2D, HORQDense
from horq_keras.quantizers import ResidualSign
from horq_keras.serialization import LARQ_OBJECTS, OBJECTS

FORMATS = {"h5": ".h5", "savedmodel": "", "keras": ".keras"}


def _every_object():
    """One small model holding every custom layer and quantizer of the package."""
    tf.random.set_seed(3)
    inputs = tf.keras.Input((8, 8, 2))
    x = HORQConv2D(4, 3, order=2, beta_form="pixel", padding="same")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(4, 3, padding="same", input_quantizer=ResidualSign(order=2),
                              kernel_quantizer=BinaryWeight())(x)
    x = binary_group(x, lambda y, prefix: conv_unit(y, 4, 3, activation_bits=2, name=prefix),
                     num_bases=2, name="w1a2")
    x = binary_group(x, lambda y, prefix: conv_unit(y, 4, 3, activation_bits=1, name=prefix),
                     num_bases=2, name="w1a1")
    x = BitPlaneConv2D(4, 3, bits=2, padding="same", kernel_quantizer="ste_sign")(x)
    x = tf.keras.layers.Flatten()(x)
    x = lq.layers.QuantDense(6, input_quantizer=UniformActivation(2, clip_value=2.0),
                             kernel_quantizer=BinaryWeight(per_channel=False))(x)
    outputs = HORQDense(3, order=3)(x)
    return tf.keras.Model(inputs, outputs, name="every_object")


def _larq_first():
    """larq's layers first: nothing of this package is loaded before them."""
    inputs = tf.keras.Input((8, 8, 2))
    x = lq.layers.QuantConv2D(4, 3, input_quantizer=ResidualSign(order=2),
                              kernel_quantizer="ste_sign", kernel_constraint="weight_clip")(inputs)
    return tf.keras.Model(inputs, tf.keras.layers.Flatten()(x), name="larq_first")


def _models():
    return {
        "larq_first": _larq_first(),
        "every_object": _every_object(),
        "groupnet": groupnet_resnet(stage_blocks=(1,), stage_filters=(8,), num_bases=2,
                                    activation_bits=2, input_shape=(16, 16, 1), num_classes=3),
    }


_LOADER = textwrap.dedent("""
    import json, sys
    import horq_keras  # the only import of this package
    import numpy as np
    import tensorflow as tf

    jobs, results = json.loads(sys.argv[1]), {}
    for path, input_path in jobs.items():
        try:
            model = tf.keras.models.load_model(path, compile=False)
            np.save(path.rstrip("/") + ".out.npy", model(np.load(input_path), training=False))
            results[path] = "ok"
        except Exception as error:  # reported to the test
            results[path] = f"{type(error).__name__}: {str(error)[:300]}"
    print(json.dumps(results))
""")


def test_every_format_reloads_after_import_horq_keras_only(tmp_path):
    jobs, expected = {}, {}
    for name, model in _models().items():
        x = np.random.default_rng(0).uniform(-1, 1, (2, *model.input_shape[1:]))
        x = x.astype(np.float32)
        np.save(tmp_path / f"{name}.x.npy", x)
        for kind, suffix in FORMATS.items():
            path = str(tmp_path / f"{name}_{kind}{suffix}")
            model.save(path, save_format="tf" if kind == "savedmodel" else None)
            jobs[path] = str(tmp_path / f"{name}.x.npy")
            expected[path] = np.asarray(model(x, training=False))
    completed = subprocess.run([sys.executable, "-c", _LOADER, json.dumps(jobs)],
                               capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, completed.stderr[-2000:]
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    assert results == {path: "ok" for path in jobs}
    for path, outputs in expected.items():
        np.testing.assert_allclose(np.load(path + ".out.npy"), outputs, rtol=1e-5, atol=1e-5,
                                   err_msg=path)


def test_both_names_registered():
    import horq_keras.models  # noqa: F401 - every module that defines objects

    objects = tf.keras.utils.get_custom_objects()
    ours = {name.split(">", 1)[1] for name, obj in objects.items()
            if name.startswith("horq_keras>") and isinstance(obj, type)}
    assert ours == {name for names in OBJECTS.values() for name in names}
    for module, names in OBJECTS.items():
        for name in names:
            cls = getattr(importlib.import_module(module), name)
            assert objects[f"horq_keras>{name}"] is cls and objects[name] is cls


def test_larq_objects_are_the_ones_larq_registers():
    """Once larq is imported, its own objects replace every stand-in."""
    objects = tf.keras.utils.get_custom_objects()
    registered = {name for name, obj in objects.items() if ">" not in name
                  and getattr(obj, "__module__", "").startswith("larq.")}
    assert registered == {name for names in LARQ_OBJECTS.values() for name in names}
