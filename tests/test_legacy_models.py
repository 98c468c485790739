"""Models saved by older code still load and compute the same outputs.

``tests/data/legacy/`` holds small HDF5 models written before the modules were moved
around (commit 4c73e19), by ``tests/data/legacy/write_legacy_models.py``, with fixed inputs and
the outputs they gave then. Each is loaded in a fresh interpreter that imported only
the horq_keras module defining its layers (no ``custom_objects``): the registered names
must still resolve.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

LEGACY = pathlib.Path(__file__).resolve().parent / "data" / "legacy"

_LOAD = """
import json, sys
IMPORT_STATEMENT
import numpy as np
import tensorflow as tf

model = tf.keras.models.load_model(sys.argv[1], compile=False)
stored = np.load(sys.argv[2])
outputs = model(stored["x"], training=False).numpy()
print(json.dumps(dict(
    max_abs_diff=float(np.max(np.abs(outputs - stored["y"]))),
    scale=float(np.max(np.abs(stored["y"]))),
    layers=sorted({type(layer).__name__ for layer in model.layers}),
)))
"""


@pytest.mark.parametrize(("name", "import_statement"), [
    ("horq_small", "import horq_keras.layers"),
    ("groupnet_resnet_k2_w1a2", "import horq_keras.groupnet"),
])
def test_legacy_model_loads_with_the_same_outputs(name, import_statement):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", _LOAD.replace("IMPORT_STATEMENT", import_statement),
         str(LEGACY / f"{name}.h5"), str(LEGACY / f"{name}.npz")],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["scale"] > 0
    assert report["max_abs_diff"] <= 1e-5 * max(1.0, report["scale"]), report
    custom = {"HORQConv2D", "HORQDense"} if name == "horq_small" else {"QuantConv2D"}
    assert custom <= set(report["layers"]), report
