"""MirroredStrategy over two logical CPU devices: every model family trains a few steps.

The families run in one child process (``tests/mirrored_families.py``): logical devices
must be configured before TensorFlow starts, which this test process has already done.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

CHILD = pathlib.Path(__file__).with_name("mirrored_families.py")


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_every_family_trains_under_mirrored_strategy():
    sys.path.insert(0, str(CHILD.parent))
    try:
        from mirrored_families import FAMILIES, FAMILY_OF
    finally:
        sys.path.remove(str(CHILD.parent))
    from horq_keras.training.registry import MODELS

    assert sorted(FAMILY_OF) == sorted(MODELS)  # a new model must name the family it is in
    assert set(FAMILY_OF.values()) == set(FAMILIES)
    result = subprocess.run([sys.executable, str(CHILD)], capture_output=True, text=True,
                            timeout=1400, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert "strategy: mirrored (MirroredStrategy), replicas: 2; global batch 8 = 4 per " \
           "replica x 2" in lines[0]["describe"]
    families = {line["family"]: line for line in lines[1:]}
    assert sorted(families) == sorted(FAMILIES)
    for name, outcome in families.items():
        assert outcome["replicas"] == 2, name
        assert outcome["replicas_identical"], name  # synchronous: one model on 2 devices
        assert outcome["changed"] == outcome["variables"], name  # every variable trained
        assert outcome["loss"] == pytest.approx(outcome["loss"]) and outcome["loss"] > 0, name
