"""The ``horq-keras`` command line is quick and quiet: building its parser imports no
TensorFlow, larq or LCE, ``--help`` prints no TensorFlow log line, and TensorFlow's
logging is off by default (``--verbose`` or the user's own level turn it back on)."""

import os
import subprocess
import sys
import time

import pytest

from horq_keras import cli

HEAVY = ("tensorflow", "tf_keras", "keras", "larq", "larq_compute_engine")
#: What TensorFlow's start-up log lines contain (C++ logging and its warnings).
TF_LOG_MARKERS = ("cuda", "tensorrt", "cpu_feature_guard", "oneDNN", "external/local_")


def _env_without_tf_settings():
    return {k: v for k, v in os.environ.items()
            if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_USE_LEGACY_KERAS")}


def test_building_the_parser_imports_no_tensorflow():
    code = ("import sys\nfrom horq_keras.cli import build_parser\nbuild_parser()\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=_env_without_tf_settings(), timeout=120, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


@pytest.mark.parametrize("argv", [["--help"], ["bench", "--help"], ["train", "--help"],
                                  ["convert", "--help"], ["verify", "--help"],
                                  ["search", "--help"]])
def test_help_is_quick_and_prints_no_tensorflow_log(argv):
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "horq_keras.cli", *argv],
                            capture_output=True, text=True, env=_env_without_tf_settings(),
                            timeout=120, check=False)
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    assert "usage: horq-keras" in result.stdout
    output = (result.stdout + result.stderr).lower()
    assert not [m for m in TF_LOG_MARKERS if m.lower() in output], result.stderr
    assert result.stderr == ""
    # Under a second on an idle machine; generous for a shared, loaded CI machine.
    assert seconds < 5, f"horq-keras {' '.join(argv)} took {seconds:.2f} s"


def test_a_subcommand_that_imports_tensorflow_prints_no_log_line():
    result = subprocess.run([sys.executable, "-m", "horq_keras.cli", "train", "--list-models"],
                            capture_output=True, text=True, env=_env_without_tf_settings(),
                            timeout=300, check=False)
    assert result.returncode == 0 and "groupnet_resnet18" in result.stdout, result.stderr
    output = (result.stdout + result.stderr).lower()
    assert not [m for m in TF_LOG_MARKERS if m.lower() in output], result.stderr


def test_tensorflow_logging_is_quiet_unless_asked(monkeypatch, tmp_path):
    unwritable = str(tmp_path / "missing" / "bench.json")
    argv = ["bench", "model.tflite", "--json", unwritable]  # fails fast: exit status 2
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert cli.main(["--verbose", *argv]) == 2
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    assert cli.main(argv) == 2
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == cli.QUIET_TF_LOG_LEVEL
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")  # the user's own choice wins
    assert cli.main(argv) == 2
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
