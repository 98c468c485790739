"""Keras / larq integration: legacy-Keras bootstrap, save/load, MirroredStrategy, summary.

The bootstrap and distribution tests run in fresh interpreters (``subprocess``), because
both depend on what happens before TensorFlow initialises.
"""

import json
import math
import os
import re
import subprocess
import sys
import textwrap

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import horq_keras
from horq_keras.layers import HORQConv2D, HORQDense
from horq_keras.models import horq_lenet


def _run_python(code, **env_updates):
    """Run ``code`` in a fresh interpreter; the last stdout line is its JSON report."""
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", **env_updates)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        check=False, capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


_REPORT_IMPORT = """
import json
try:
    import horq_keras
except Exception as error:
    print(json.dumps({"error": type(error).__name__, "message": str(error)}))
else:
    import os
    import tensorflow as tf
    from tensorflow.keras.optimizers.legacy import Optimizer  # what larq imports
    print(json.dumps({
        "error": None,
        "layer_module": tf.keras.layers.Layer.__module__,
        "optimizer_module": Optimizer.__module__,
        "variable": os.environ.get("TF_USE_LEGACY_KERAS"),
    }))
"""


def test_import_selects_legacy_keras():
    report = _run_python(_REPORT_IMPORT)
    assert report["error"] is None, report
    assert report["layer_module"].startswith("tf_keras.")
    assert report["optimizer_module"].startswith("tf_keras.")
    assert report["variable"] == "1"


def _assert_clear_import_error(report):
    assert report["error"] == "ImportError", report
    assert "TF_USE_LEGACY_KERAS" in report["message"]
    assert "Keras 3" in report["message"]


def test_keras_3_already_in_use_is_a_clear_import_error():
    _assert_clear_import_error(_run_python("import tensorflow as tf\ntf.keras.layers\n"
                                           + _REPORT_IMPORT))


def test_legacy_keras_disabled_is_a_clear_import_error():
    _assert_clear_import_error(_run_python(_REPORT_IMPORT, TF_USE_LEGACY_KERAS="0"))


def test_tensorflow_imported_first_works_or_fails_clearly():
    """``import tensorflow`` before ``import horq_keras``, tf.keras not used yet.

    TensorFlow fixes the ``tensorflow.keras`` import path when it is imported, so
    larq's ``from tensorflow.keras.optimizers.legacy import Optimizer`` may see
    Keras 3. Either everything works on Keras 2, or the import fails with the
    bootstrap's ImportError (never an unrelated error from inside larq).
    """
    report = _run_python("import tensorflow\n" + _REPORT_IMPORT)
    if report["error"] is None:
        assert report["layer_module"].startswith("tf_keras.")
        assert report["optimizer_module"].startswith("tf_keras.")
    else:
        _assert_clear_import_error(report)


# --- save / load -----------------------------------------------------------------------


def _randomize(model, rng):
    """Replace every weight (kernels, BN statistics) by random values of its shape."""
    model.set_weights([
        rng.uniform(0.5, 1.5, w.shape) if "variance" in v.name or "gamma" in v.name
        else rng.uniform(-1, 1, w.shape)
        for v, w in zip(model.weights, model.get_weights())
    ])


def _small_model():
    inputs = tf.keras.Input((8, 8, 4))
    x = HORQConv2D(6, 3, order=1, beta_form="pixel", padding="same", name="pixel")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = HORQConv2D(6, 3, order=3, beta_form="column", strides=2, name="column")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = HORQConv2D(6, 3, order=2, beta_form="sample", padding="same", pad_values=0.0,
                   clip_value=None, name="sample")(x)
    x = tf.keras.layers.Flatten()(x)
    x = HORQDense(5, order=4, name="dense")(x)
    return tf.keras.Model(inputs, x)


def _json_config(layer):
    """The layer's config as it reads after a JSON round trip (tuples become lists)."""
    return json.loads(json.dumps(layer.get_config()))


@pytest.mark.parametrize(
    "builder, file_format",
    [("horq_lenet", "h5"), ("horq_lenet", "savedmodel"),
     ("small", "h5"), ("small", "savedmodel"), ("small", "keras")],
)
def test_save_and_load_without_custom_objects(rng, tmp_path, builder, file_format):
    model = horq_lenet(order=3) if builder == "horq_lenet" else _small_model()
    _randomize(model, rng)
    x = rng.standard_normal((2, *model.input_shape[1:])).astype("float32")
    expected = model(x).numpy()
    path = str(tmp_path / {"h5": "model.h5", "savedmodel": "model", "keras": "model.keras"}[
        file_format])
    model.save(path)
    loaded = tf.keras.models.load_model(path)  # no custom_objects: the classes are registered
    for original, restored in zip(model.layers, loaded.layers, strict=True):
        assert type(restored) is type(original)
        if isinstance(original, (HORQConv2D, HORQDense)):
            assert _json_config(restored) == _json_config(original)
    np.testing.assert_array_equal(loaded(x).numpy(), expected)


# --- distribution ----------------------------------------------------------------------


def test_fit_under_mirrored_strategy_on_two_cpus():
    report = _run_python("""
        import json
        import horq_keras
        import numpy as np
        import tensorflow as tf
        from horq_keras.layers import HORQConv2D, HORQDense

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            model = tf.keras.Sequential([
                tf.keras.Input((8, 8, 4)),
                HORQConv2D(6, 3, order=2, beta_form="pixel", padding="same"),
                tf.keras.layers.BatchNormalization(),
                HORQConv2D(6, 3, order=2, beta_form="column"),
                tf.keras.layers.Flatten(),
                HORQDense(3, order=2),
            ])
            model.compile(
                optimizer=tf.keras.optimizers.Adam(0.01),
                loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
        rng = np.random.default_rng(0)
        x = rng.standard_normal((32, 8, 8, 4)).astype("float32")
        y = rng.integers(0, 3, 32)
        before = {v.name: v.numpy() for v in model.trainable_weights}
        history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        print(json.dumps({
            "replicas": strategy.num_replicas_in_sync,
            "loss": history.history["loss"],
            "changed": {v.name: bool(np.any(v.numpy() != before[v.name]))
                        for v in model.trainable_weights},
        }))
    """)
    assert report["replicas"] == 2
    assert all(math.isfinite(loss) for loss in report["loss"])
    kernels = {name: changed for name, changed in report["changed"].items() if "kernel" in name}
    assert len(kernels) == 3 and all(kernels.values()), report["changed"]


# --- order-aware summary ---------------------------------------------------------------


def _summary_macs(summary_fn, model):
    """{layer name: {precision: MACs}} parsed from a larq summary table."""
    lines = []
    summary_fn(model, print_fn=lines.append)
    table = "\n".join(lines).splitlines()
    header = next(line for line in table if "MACs" in line)
    precisions = [int(p) for p in re.findall(r"(\d+)-bit MACs", header)]
    names = {layer.name for layer in model.layers}
    macs = {}
    for line in table:
        cells = line.strip("| ").split()
        if cells and cells[0] in names:
            values = zip(precisions, cells[-len(precisions):], strict=True)
            macs[cells[0]] = {p: int(v) for p, v in values if v != "?"}
    return macs


def _summary_model():
    inputs = tf.keras.Input((8, 8, 4))
    x = tf.keras.layers.Conv2D(4, 3, name="float_conv")(inputs)
    x = HORQConv2D(6, 3, order=3, beta_form="pixel", name="horq_conv")(x)
    x = HORQConv2D(6, 3, order=2, beta_form="column", padding="same", name="horq_column")(x)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    x = HORQDense(5, order=4, name="horq_dense")(x)
    return tf.keras.Model(inputs, x)


def test_summary_counts_order_binary_macs():
    model = _summary_model()
    horq = _summary_macs(horq_keras.summary, model)
    larq = _summary_macs(lq.models.summary, model)
    # One base: weights x output pixels; a HORQ layer of order K runs K of them.
    expected_one_base = {
        "horq_conv": 3 * 3 * 4 * 6 * 4 * 4,
        "horq_column": 3 * 3 * 6 * 6 * 4 * 4,
        "horq_dense": 4 * 4 * 6 * 5,
    }
    for layer in model.layers:
        if isinstance(layer, (HORQConv2D, HORQDense)):
            assert larq[layer.name][1] == expected_one_base[layer.name]
            assert horq[layer.name][1] == layer.order * expected_one_base[layer.name]
            assert horq[layer.name][32] == larq[layer.name][32] == 0
    assert horq["float_conv"] == larq["float_conv"] == {1: 0, 32: 3 * 3 * 4 * 4 * 6 * 6}


def test_summary_leaves_larq_summary_unchanged():
    model = _summary_model()
    profile_class = lq.models.LayerProfile
    before = _summary_macs(lq.models.summary, model)
    horq_keras.summary(model, print_fn=lambda line: None)
    assert lq.models.LayerProfile is profile_class
    assert _summary_macs(lq.models.summary, model) == before

    def failing_print(line):
        raise RuntimeError("print failed")

    with pytest.raises(RuntimeError, match="print failed"):
        horq_keras.summary(model, print_fn=failing_print)
    assert lq.models.LayerProfile is profile_class
    assert _summary_macs(lq.models.summary, model) == before


def test_summary_profiles_nested_models_and_rejects_unbuilt_ones():
    from horq_keras.models.summary import HORQModelProfile

    inner = _summary_model()
    inputs = tf.keras.Input((8, 8, 4))
    outer = tf.keras.Model(inputs, inner(inputs))
    binary = HORQModelProfile(inner).op_count("mac", 1)
    assert HORQModelProfile(outer).op_count("mac", 1) == binary
    assert binary > lq.models.ModelProfile(inner).op_count("mac", 1)
    with pytest.raises(ValueError, match="`model` is not built"):
        horq_keras.summary(tf.keras.Sequential([HORQDense(3)]))
