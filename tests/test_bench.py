"""`horq-keras bench`: log parsing, targets, the Python runner and local benchmarks.

Also holds the fixtures that test_bench_ssh.py and test_bench_adb.py import: the tiny
converted models and a stand-in for LCE's ``lce_benchmark_model``.
"""

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import larq as lq
import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf

from horq_keras.bench import cli, timing, parse, runner
from horq_keras.bench.adb import parse_adb_devices
from horq_keras.tflite.ops import summarize_ops
from horq_keras.bench.ssh import check_ssh_option
from horq_keras.bench.targets import (
    MACHINE_SCRIPT,
    BenchError,
    TargetOptions,
    parse_machine,
    parse_target,
)

# --------------------------------------------------------------------------------------
# Fixtures shared with test_bench_ssh.py and test_bench_adb.py
# --------------------------------------------------------------------------------------


def _tiny_model(binary):
    """28x28x1 (an MNIST digit) -> float conv 5x5 stride 2 -> BN -> [binary | float] conv
    -> BN -> global pool -> dense 10 -> softmax."""
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Conv2D(32, 5, strides=2, use_bias=False)(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    if binary:
        x = lq.layers.QuantConv2D(
            32, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign",
            kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False,
        )(x)
    else:
        x = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(10, activation="softmax")(x))


# Paths of the converted models, shared by the modules that import the fixture (pytest
# makes one session fixture per module that holds it; the conversions run once).
_BENCH_MODELS = {}


@pytest.fixture(scope="session")
def bench_models(tmp_path_factory):
    """Paths of tiny converted models: ``binary`` (one LceBconv2d), ``float`` and
    ``unloadable`` (the binary model with its custom op renamed to ``LceBconv9d``: a
    valid flatbuffer that no interpreter can run)."""
    if not _BENCH_MODELS:
        directory = tmp_path_factory.mktemp("bench_models")
        for name in ("binary", "float"):
            path = directory / f"{name}.tflite"
            path.write_bytes(lce.convert_keras_model(_tiny_model(name == "binary")))
            _BENCH_MODELS[name] = str(path)
        flatbuffer = (directory / "binary.tflite").read_bytes()
        assert flatbuffer.count(b"LceBconv2d") == 1
        (directory / "unloadable.tflite").write_bytes(flatbuffer.replace(b"LceBconv2d", b"LceBconv9d"))
        _BENCH_MODELS["unloadable"] = str(directory / "unloadable.tflite")
    return dict(_BENCH_MODELS)


# A stand-in for LCE's lce_benchmark_model (no aarch64 board here): the same flags and
# the log format of TFLite's benchmark tool (see horq_keras/bench/parse.py), real times
# measured with LCE's Python interpreter. It appends its flags and the times it measured
# to a JSON-lines log, which the tests compare with what `bench` reports.
_FAKE_BENCHMARK_MODEL = r'''#!{python}
import argparse, json, statistics, sys
sys.path.insert(0, {runner_dir!r})
import numpy as np
import runner

FLAGS = ("graph", "num_threads", "num_runs", "min_secs", "warmup_runs", "warmup_min_secs",
         "use_xnnpack", "use_indirect_bgemm", "use_reference_bconv", "enable_op_profiling")
flags = {{}}
for arg in sys.argv[1:]:
    key, _, value = arg.lstrip("-").partition("=")
    if key not in FLAGS:
        sys.exit(f"ERROR: unknown flag {{arg}}")
    flags[key] = value
print("INFO: STARTING!")
print(f"INFO: Graph: [{{flags['graph']}}]")
args = argparse.Namespace(
    threads=int(flags["num_threads"]), xnnpack=flags["use_xnnpack"] == "true",
    indirect_bgemm=flags["use_indirect_bgemm"] == "true",
    reference_bconv=flags["use_reference_bconv"] == "true", runtime="lce")
try:
    model = runner.load_model(flags["graph"], args, np.random.default_rng(0))
except runner.RunnerError as error:
    print(f"ERROR: {{error}}", file=sys.stderr)
    print("ERROR: Benchmarking failed.", file=sys.stderr)
    sys.exit(1)
warmup = [round(runner.time_us(model)) for _ in range(int(flags["warmup_runs"]))]
runs = [round(runner.time_us(model)) for _ in range(int(flags["num_runs"]))]
for times in (warmup, runs):
    print(f"INFO: Running benchmark for at least {{len(times)}} iterations and at least 0 "
          "seconds but terminate if exceeding 150 seconds.")
    print(f"INFO: count={{len(times)}} first={{times[0]}} curr={{times[-1]}} min={{min(times)}} "
          f"max={{max(times)}} avg={{statistics.fmean(times):g}} std={{int(statistics.pstdev(times))}}")
    print()
print(f"INFO: Inference timings in us: Init: 1234, First inference: {{warmup[0]}}, "
      f"Warmup (avg): {{statistics.fmean(warmup):g}}, Inference (avg): {{statistics.fmean(runs):g}}")
with open({log!r}, "a") as log:
    log.write(json.dumps({{"flags": flags, "runs_us": runs}}) + "\n")
'''


@pytest.fixture
def fake_benchmark_binary(tmp_path):
    """``(path, read_log)``: the stand-in ``lce_benchmark_model`` and a function that
    returns its log entries (one per run)."""
    log = tmp_path / "fake_benchmark_model.jsonl"
    path = tmp_path / "fake_lce_benchmark_model"
    path.write_text(_FAKE_BENCHMARK_MODEL.format(
        python=sys.executable, runner_dir=os.path.dirname(timing.RUNNER_PATH), log=str(log)))
    path.chmod(0o755)

    def read_log():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return str(path), read_log


def check_against_fake_log(result, entries, settings, graphs):
    """``result`` reports exactly what the stand-in measured, with the flags of ``settings``,
    on the model files ``graphs`` (model, baseline)."""
    assert [entry["flags"]["graph"] for entry in entries] == list(graphs)
    for name, entry in zip(("model", "baseline"), entries, strict=True):
        runs = entry["runs_us"]
        latency = result[name]["latency_ms"]
        assert latency["count"] == settings.runs == len(runs)
        assert latency["min"] == min(runs) / 1e3 and latency["max"] == max(runs) / 1e3
        assert latency["mean"] == pytest.approx(statistics.fmean(runs) / 1e3, rel=1e-5)
        assert latency["median"] is None  # this log format has no percentiles
        assert entry["flags"] == {
            "graph": entry["flags"]["graph"], "num_threads": str(settings.threads),
            "num_runs": str(settings.runs), "min_secs": "0",
            "warmup_runs": str(settings.warmup), "warmup_min_secs": "0",
            "use_xnnpack": str(settings.use_xnnpack).lower(),
            "use_indirect_bgemm": str(settings.use_indirect_bgemm).lower(),
            "use_reference_bconv": str(settings.use_reference_bconv).lower(),
            "enable_op_profiling": str(settings.op_profiling).lower(),
        }
    expected = statistics.fmean(entries[1]["runs_us"]) / statistics.fmean(entries[0]["runs_us"])
    assert result["ratio_statistic"] == "mean"
    assert result["speedup_vs_baseline"] == pytest.approx(expected, rel=1e-4)


# --------------------------------------------------------------------------------------
# lce_benchmark_model's log format
# --------------------------------------------------------------------------------------

# A run of lce_benchmark_model with --enable_op_profiling=true, written in the format of
# TFLite's benchmark tool, which lce_benchmark_model is (larq/compute-engine:
# larq_compute_engine/tflite/benchmark/lce_benchmark_main.cc, lce_benchmark_tflite_model.cc
# for the "Use reference Bconv" / "Use indirect BGEMM" parameter lines). Sources of each
# part, in tensorflow/tensorflow:
#   "Running benchmark ..." and the count= lines: tensorflow/lite/tools/benchmark/
#     benchmark_model.cc (BenchmarkModel::Run) with Stat::OutputToStream of
#     tsl/util/stats_calculator.h;
#   "Inference timings in us: ...", memory lines: benchmark_model.cc
#     (BenchmarkLoggingListener::OnBenchmarkEnd);
#   the two profile headers: tensorflow/lite/tools/benchmark/profiling_listener.cc;
#   the tables: the example of tensorflow/lite/tools/benchmark/README.md
#     ("Profiling model operators"), tab-separated, with the [start] column.
# The numbers describe a small HORQ-like model and are consistent with each other.
LCE_BENCHMARK_LOG = """\
STARTING!
Log parameter values verbosely: [0]
Min num runs: [50]
Min runs duration (seconds): [0]
Num threads: [1]
Min warmup runs: [5]
Min warmup runs duration (seconds): [0]
Graph: [/data/local/tmp/horq-bench/model.tflite]
Enable op profiling: [1]
#threads used for CPU inference: [1]
Use reference Bconv: [0]
Use indirect BGEMM: [1]
Loaded model /data/local/tmp/horq-bench/model.tflite
The input model file size (MB): 0.10938
Initialized session in 2.713ms.
Running benchmark for at least 5 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
count=5 first=1873 curr=702 min=695 max=1873 avg=938.4 std=468

Running benchmark for at least 50 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
count=50 first=705 curr=689 min=671 max=1204 avg=712.36 std=74

Inference timings in us: Init: 2713, First inference: 1873, Warmup (avg): 938.4, Inference (avg): 712.36
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
Memory footprint delta from the start of the tool (MB): init=1.125 overall=2.5
Profiling Info for Benchmark Initialization:
============================== Run Order ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t         AllocateTensors\t            0.000\t    0.412\t    0.412\t100.000%\t100.000%\t     0.000\t        1\tAllocateTensors/0

============================== Top by Computation Time ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t         AllocateTensors\t            0.000\t    0.412\t    0.412\t100.000%\t100.000%\t     0.000\t        1\tAllocateTensors/0

Number of nodes executed: 1
============================== Summary by node type ==============================
\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]\t[times called]
\t         AllocateTensors\t        1\t     0.412\t   100.000%\t   100.000%\t     0.000\t        1

Timings (microseconds): count=1 curr=412
Memory (bytes): count=0
1 nodes observed



Operator-wise Profiling Info for Regular Benchmark Runs:
============================== Run Order ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t                 CONV_2D\t            0.000\t    0.201\t    0.188\t 27.128%\t 27.128%\t     0.000\t        1\t[model/conv1_float/Conv2D]:0
\t             MAX_POOL_2D\t            0.188\t    0.031\t    0.029\t  4.185%\t 31.313%\t     0.000\t        1\t[model/pool1/MaxPool]:1
\t             LceQuantize\t            0.217\t    0.012\t    0.011\t  1.587%\t 32.900%\t     0.000\t        1\t[model/conv2/LceQuantize]:2
\t              LceBconv2d\t            0.228\t    0.214\t    0.197\t 28.427%\t 61.328%\t     0.000\t        1\t[model/conv2/LceBconv2d]:3
\t             MAX_POOL_2D\t            0.425\t    0.009\t    0.008\t  1.154%\t 62.482%\t     0.000\t        1\t[model/pool2/MaxPool]:4
\t             LceQuantize\t            0.433\t    0.004\t    0.004\t  0.577%\t 63.059%\t     0.000\t        1\t[model/fc3/LceQuantize]:5
\t              LceBconv2d\t            0.437\t    0.236\t    0.229\t 33.045%\t 96.104%\t     0.000\t        1\t[model/fc3/LceBconv2d]:6
\t         FULLY_CONNECTED\t            0.666\t    0.024\t    0.023\t  3.319%\t 99.423%\t     0.000\t        1\t[model/logits_float/MatMul]:7
\t                 SOFTMAX\t            0.689\t    0.004\t    0.004\t  0.577%\t100.000%\t     0.000\t        1\t[StatefulPartitionedCall:0]:8

============================== Top by Computation Time ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t              LceBconv2d\t            0.437\t    0.236\t    0.229\t 33.045%\t 33.045%\t     0.000\t        1\t[model/fc3/LceBconv2d]:6
\t              LceBconv2d\t            0.228\t    0.214\t    0.197\t 28.427%\t 61.472%\t     0.000\t        1\t[model/conv2/LceBconv2d]:3
\t                 CONV_2D\t            0.000\t    0.201\t    0.188\t 27.128%\t 88.600%\t     0.000\t        1\t[model/conv1_float/Conv2D]:0

Number of nodes executed: 9
============================== Summary by node type ==============================
\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]\t[times called]
\t              LceBconv2d\t        2\t     0.426\t    61.472%\t    61.472%\t     0.000\t        2
\t                 CONV_2D\t        1\t     0.188\t    27.128%\t    88.600%\t     0.000\t        1
\t             MAX_POOL_2D\t        2\t     0.037\t     5.339%\t    93.939%\t     0.000\t        2
\t         FULLY_CONNECTED\t        1\t     0.023\t     3.319%\t    97.258%\t     0.000\t        1
\t             LceQuantize\t        2\t     0.015\t     2.165%\t    99.423%\t     0.000\t        2
\t                 SOFTMAX\t        1\t     0.004\t     0.577%\t   100.000%\t     0.000\t        1

Timings (microseconds): count=50 first=705 curr=689 min=671 max=1204 avg=712.36 std=74
Memory (bytes): count=0
9 nodes observed
"""


def test_benchmark_model_log_latency_and_summary():
    parsed = parse.parse_benchmark_model_output(LCE_BENCHMARK_LOG)
    # The regular runs' line (count=50 ...), not the warm-up's (count=5 ...).
    assert parsed["latency_ms"] == {
        "count": 50, "min": 0.671, "median": None, "max": 1.204, "mean": 0.71236, "std": 0.074,
    }
    assert parsed["init_ms"] == 2.713
    assert parsed["first_inference_ms"] == 1.873
    assert parsed["warmup_mean_ms"] == pytest.approx(0.9384)


def test_benchmark_model_log_operator_profile():
    profile = parse.parse_benchmark_model_output(LCE_BENCHMARK_LOG)["op_profile"]
    # Operators of the regular runs, in run order (not the initialization's AllocateTensors).
    assert [op["node_type"] for op in profile["operators"]] == [
        "CONV_2D", "MAX_POOL_2D", "LceQuantize", "LceBconv2d", "MAX_POOL_2D", "LceQuantize",
        "LceBconv2d", "FULLY_CONNECTED", "SOFTMAX"]
    assert profile["operators"][3] == {"node_type": "LceBconv2d", "name": "[model/conv2/LceBconv2d]:3",
                                       "avg_ms": 0.197, "percent": 28.427}
    assert profile["operators"][8]["name"] == "[StatefulPartitionedCall:0]:8"
    by_type = {row["node_type"]: row for row in profile["op_types"]}
    assert by_type["LceBconv2d"] == {"node_type": "LceBconv2d", "count": 2, "avg_ms": 0.426,
                                     "percent": 61.472}
    # The per-type summary adds up the per-operator rows.
    for node_type, row in by_type.items():
        assert row["avg_ms"] == pytest.approx(sum(
            op["avg_ms"] for op in profile["operators"] if op["node_type"] == node_type))
    lce_ms = 0.426 + 0.015  # LceBconv2d + LceQuantize rows of the summary
    total_ms = 0.426 + 0.188 + 0.037 + 0.023 + 0.015 + 0.004
    assert profile["binary_time_share"] == pytest.approx(lce_ms / total_ms)


def test_benchmark_model_log_with_prefixes_and_percentiles():
    """Newer builds prefix log lines with "INFO: " and print p5/median/p95."""
    text = LCE_BENCHMARK_LOG.replace(
        "count=50 first=705 curr=689 min=671 max=1204 avg=712.36 std=74\n",
        "count=50 first=705 curr=689 min=671 max=1204 avg=712.36 std=74 p5=675 median=701 p95=811\n", 1)
    prefixed = "\n".join("INFO: " + line for line in text.splitlines())
    parsed = parse.parse_benchmark_model_output(prefixed)
    plain = parse.parse_benchmark_model_output(LCE_BENCHMARK_LOG)
    assert parsed["latency_ms"] == {**plain["latency_ms"], "median": 0.701}
    assert parsed["op_profile"] == plain["op_profile"]


# Newer TFLite builds print the profile tables space-aligned, without the [start] column
# (as in logs of TFLite 2.1x's benchmark_model with --enable_op_profiling=true).
SPACE_ALIGNED_PROFILE = """\
INFO: Operator-wise Profiling Info for Regular Benchmark Runs:
============================== Run Order ==============================
                     [node type]          [first]        [avg ms]            [%]          [cdf%]          [mem KB]        [times called]  [Name]
                         CONV_2D            0.201           0.188        45.742%         45.742%             0.000                1       [model/conv1_float/Conv2D]:0
                      LceBconv2d            0.214           0.197        47.932%         93.674%             0.000                1       [model/conv2/LceBconv2d]:1
   Convolution (NHWC, F32) IGEMM            0.030           0.026         6.326%        100.000%             0.000                1       [Delegate/Convolution (NHWC, F32) IGEMM:2]

============================== Summary by node type ==============================
                     [Node type]          [count]         [avg ms]          [avg %]         [cdf %]       [mem KB]        [times called]
                      LceBconv2d                1            0.197          47.932%         47.932%          0.000                1
                         CONV_2D                1            0.188          45.742%         93.674%          0.000                1
   Convolution (NHWC, F32) IGEMM                1            0.026           6.326%        100.000%          0.000                1

Timings (microseconds): count=50 first=455 curr=410 min=398 max=512 avg=411 std=12
"""


def test_profile_space_aligned_without_start_column():
    profile = parse.parse_profile(SPACE_ALIGNED_PROFILE)
    assert [(op["node_type"], op["name"], op["avg_ms"]) for op in profile["operators"]] == [
        ("CONV_2D", "[model/conv1_float/Conv2D]:0", 0.188),
        ("LceBconv2d", "[model/conv2/LceBconv2d]:1", 0.197),
        ("Convolution (NHWC, F32) IGEMM", "[Delegate/Convolution (NHWC, F32) IGEMM:2]", 0.026),
    ]
    assert [row["count"] for row in profile["op_types"]] == [1, 1, 1]
    assert profile["binary_time_share"] == pytest.approx(0.197 / (0.197 + 0.188 + 0.026))


def test_benchmark_model_log_all_same_and_exponent_formats():
    text = ("count=1 curr=1873\n\ncount=3 curr=2950340(all same)\n\n"
            "Inference timings in us: Init: 17187, First inference: 1873, "
            "Warmup (avg): 1873, Inference (avg): 2.95034e+06\n")
    parsed = parse.parse_benchmark_model_output(text)
    assert parsed["latency_ms"]["count"] == 3
    assert parsed["latency_ms"]["min"] == parsed["latency_ms"]["max"] == 2950.34
    assert parsed["latency_ms"]["mean"] == pytest.approx(2950.34)
    assert parsed["op_profile"] is None


def test_benchmark_model_log_failure_names_the_error():
    text = ("STARTING!\nGraph: [/tmp/x.tflite]\nERROR: Failed to mmap model /tmp/x.tflite\n"
            "ERROR: Benchmarking failed.\n")
    with pytest.raises(BenchError, match="Failed to mmap model /tmp/x.tflite"):
        parse.parse_benchmark_model_output(text)


def test_latency_stats_match_numpy(rng):
    samples = rng.uniform(100, 5000, size=101)
    stats = parse.latency_stats(samples.tolist())
    ms = samples / 1e3
    assert stats["count"] == 101
    for key, value in (("min", ms.min()), ("median", np.median(ms)), ("max", ms.max()),
                       ("mean", ms.mean()), ("std", ms.std())):
        assert stats[key] == pytest.approx(value, rel=1e-12)


def test_runner_output_line_is_found_among_noise():
    stdout = 'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nHORQ_BENCH_RESULT {"a": [1, 2]}\n'
    assert parse.parse_runner_output(stdout) == {"a": [1, 2]}
    with pytest.raises(BenchError, match="no result line"):
        parse.parse_runner_output("Traceback ...\n")


# --------------------------------------------------------------------------------------
# Targets and options
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, kind, fields", [
    ("local", "local", {}),
    ("ssh://pi@raspberrypi.local", "ssh", {"user": "pi", "host": "raspberrypi.local", "port": None}),
    ("ssh://192.168.1.7:2222", "ssh", {"user": None, "host": "192.168.1.7", "port": 2222}),
    ("ssh://me@[::1]:22", "ssh", {"user": "me", "host": "::1", "port": 22}),
    ("adb", "adb", {"serial": None}),
    ("adb:emulator-5554", "adb", {"serial": "emulator-5554"}),
])
def test_parse_target(text, kind, fields):
    spec = parse_target(text)
    assert spec.kind == kind
    for name, value in fields.items():
        assert getattr(spec, name) == value
    assert parse_target(str(spec)) == spec


@pytest.mark.parametrize("text", [
    "", "remote", "ftp://host", "ssh://", "ssh://host/path", "ssh://user:secret@host",
    "ssh://-oProxyCommand=touch/host", "ssh://host:99999", "adb:", "adb:-s",
])
def test_parse_target_rejects(text):
    with pytest.raises(ValueError, match="`--target` must be one of local, ssh://"):
        parse_target(text)


def test_ssh_options_cannot_loosen_checks():
    assert check_ssh_option("UserKnownHostsFile=/tmp/k") == "UserKnownHostsFile=/tmp/k"
    assert check_ssh_option("ProxyJump gateway") == "ProxyJump=gateway"
    for option in ("StrictHostKeyChecking=no", "stricthostkeychecking accept-new", "BatchMode=no"):
        with pytest.raises(ValueError, match="stay on"):
            check_ssh_option(option)
    with pytest.raises(ValueError, match="Key=Value"):
        check_ssh_option("=oops")


@pytest.mark.parametrize("kwargs, argument", [
    ({"threads": 0}, "threads"), ({"runs": 0}, "runs"), ({"warmup": 0}, "warmup"),
    ({"runs": 2.5}, "runs"), ({"threads": True}, "threads"),
])
def test_settings_reject(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}` must be an integer >= 1"):
        timing.Settings(**kwargs)


@pytest.mark.parametrize("kwargs, argument", [
    ({"timeout": 0}, "timeout"), ({"connect_timeout": 0}, "connect_timeout"),
    ({"device_dir": "data/local/tmp"}, "device_dir"), ({"remote_python": "-c"}, "remote_python"),
])
def test_target_options_reject(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        TargetOptions(**kwargs)


def test_parse_adb_devices():
    # `adb devices` output (Android developer docs, "Query for devices").
    text = ("* daemon not running; starting now at tcp:5037\n* daemon started successfully\n"
            "List of devices attached\nemulator-5556\tdevice\n0a388e93\tunauthorized\n"
            "R58M\tno permissions (user in plugdev group); see [http://developer.android.com/tools/device.html]\n\n")
    assert parse_adb_devices(text) == {
        "emulator-5556": "device", "0a388e93": "unauthorized",
        "R58M": "no permissions (user in plugdev group); see [http://developer.android.com/tools/device.html]",
    }
    assert parse_adb_devices("List of devices attached\n\n") == {}


def test_machine_script_describes_this_machine():
    output = subprocess.run(["sh", "-c", MACHINE_SCRIPT], capture_output=True, text=True,
                            check=True).stdout
    facts = parse_machine(output)
    assert facts["machine"] == platform.machine()
    assert facts["hostname"] == platform.node()
    assert facts["system"] == platform.system()
    assert int(facts["cpus"]) == os.cpu_count()
    assert parse_machine("a=1\nnot a fact\nb=\n c=2\n=3\nd=x=y\n") == {"a": "1", "d": "x=y"}


# --------------------------------------------------------------------------------------
# Operator summary
# --------------------------------------------------------------------------------------


def test_summarize_ops(bench_models):
    with open(bench_models["binary"], "rb") as file:
        binary = summarize_ops(file.read())
    # float conv, LceQuantize, LceBconv2d, MEAN (global pool), FULLY_CONNECTED, SOFTMAX
    assert binary["op_counts"] == {"CONV_2D": 1, "FULLY_CONNECTED": 1, "LceBconv2d": 1,
                                   "LceQuantize": 1, "MEAN": 1, "SOFTMAX": 1}
    assert (binary["num_ops"], binary["num_binary_ops"]) == (6, 2)
    assert binary["binary_op_share"] == pytest.approx(2 / 6)
    assert (binary["num_binary_convs"], binary["num_product_ops"]) == (1, 3)
    assert binary["binary_conv_share"] == pytest.approx(1 / 3)
    with open(bench_models["float"], "rb") as file:
        floating = summarize_ops(file.read())
    assert floating["num_binary_ops"] == 0 and floating["binary_conv_share"] == 0.0
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        summarize_ops(b"\x00" * 64)


# --------------------------------------------------------------------------------------
# Local benchmarks
# --------------------------------------------------------------------------------------


def _file_facts(path):
    with open(path, "rb") as file:
        data = file.read()
    return len(data), hashlib.sha256(data).hexdigest()


def test_local_benchmark_with_the_python_runner(bench_models):
    settings = timing.Settings(runs=15, warmup=2, use_xnnpack=False)
    result = timing.benchmark(bench_models["binary"], bench_models["float"], settings=settings)
    assert result["target"] == "local"
    assert result["machine"]["machine"] == platform.machine()
    assert result["runner"] == {
        "kind": "python", "python": sys.executable,
        "runtime": f"larq-compute-engine {importlib.metadata.version('larq-compute-engine')}"}
    assert result["settings"] == {**vars(settings), "op_profiling": False}
    for name, path in (("model", bench_models["binary"]), ("baseline", bench_models["float"])):
        entry = result[name]
        assert entry["path"] == os.path.abspath(path)
        assert (entry["size_bytes"], entry["sha256"]) == _file_facts(path)
        latency = entry["latency_ms"]
        assert latency["count"] == 15
        assert 0 < latency["min"] <= latency["median"] <= latency["max"]
        assert latency["min"] <= latency["mean"] <= latency["max"]
        assert entry["first_inference_ms"] > 0 and entry["op_profile"] is None
    assert result["model"]["ops"]["num_binary_convs"] == 1
    assert result["ratio_statistic"] == "median"
    assert result["speedup_vs_baseline"] == pytest.approx(
        result["baseline"]["latency_ms"]["median"] / result["model"]["latency_ms"]["median"])
    json.dumps(result)  # JSON-ready


def test_local_benchmark_without_baseline(bench_models):
    result = timing.benchmark(bench_models["float"], settings=timing.Settings(runs=3, warmup=1))
    assert result["baseline"] is None and result["speedup_vs_baseline"] is None
    assert result["model"]["latency_ms"]["count"] == 3


def test_runner_that_cannot_load_the_model_fails_clearly(bench_models):
    start = time.monotonic()
    with pytest.raises(BenchError) as info:
        timing.benchmark(bench_models["float"], bench_models["unloadable"],
                        settings=timing.Settings(runs=2, warmup=1))
    message = str(info.value)
    assert "cannot run the baseline model" in message
    assert "unresolved custom op: LceBconv9d" in message
    assert time.monotonic() - start < 60


def test_tflite_runtime_fallback_explains_lce_models(bench_models):
    """Without LCE (forced with --runtime tflite) the runner runs float models and says
    what to do for models with LCE operators."""
    argv = [sys.executable, timing.RUNNER_PATH, "--runtime", "tflite", "--runs", "2", "--warmup", "1"]
    ok = subprocess.run([*argv, bench_models["float"]], capture_output=True, text=True, timeout=300)
    output = parse.parse_runner_output(ok.stdout)
    assert ok.returncode == 0 and output["runtime"].startswith("tensorflow ")
    assert len(output["results"][0]["latency_us"]) == 2
    args = argparse.Namespace(runtime="tflite", threads=1, xnnpack=True, indirect_bgemm=True,
                              reference_bconv=False)
    with pytest.raises(runner.RunnerError, match="(?s)LceQuantize.*install larq-compute-engine"):
        runner.load_model(bench_models["binary"], args, np.random.default_rng(0))


def test_benchmark_rejects_bad_models(bench_models, tmp_path):
    with pytest.raises(ValueError, match="`model` must be a .tflite file"):
        timing.benchmark(str(tmp_path / "missing.tflite"))
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(os.urandom(256))
    with pytest.raises(ValueError, match="`baseline` .*not a TFLite flatbuffer"):
        timing.benchmark(bench_models["binary"], str(junk))
    with pytest.raises(ValueError, match="`--benchmark-binary` is required for --target adb"):
        timing.benchmark(bench_models["binary"], target="adb")


def test_local_benchmark_binary(bench_models, fake_benchmark_binary):
    binary, read_log = fake_benchmark_binary
    settings = timing.Settings(threads=2, runs=6, warmup=2, use_indirect_bgemm=False)
    result = timing.benchmark(bench_models["binary"], bench_models["float"], settings=settings,
                             benchmark_binary=binary)
    assert result["runner"] == {"kind": "lce_benchmark_model", "binary": binary}
    assert result["settings"] == vars(settings)
    check_against_fake_log(result, read_log(), settings,
                           [os.path.abspath(bench_models[name]) for name in ("binary", "float")])
    assert result["model"]["init_ms"] == 1.234


def test_local_benchmark_binary_failures(bench_models, fake_benchmark_binary, tmp_path):
    with pytest.raises(ValueError, match="`--benchmark-binary` .* is missing or not executable"):
        timing.benchmark(bench_models["binary"], benchmark_binary=str(tmp_path / "nothing"))
    with pytest.raises(BenchError, match="failed on the model .*LceBconv9d"):
        timing.benchmark(bench_models["unloadable"], benchmark_binary=fake_benchmark_binary[0],
                        settings=timing.Settings(runs=2, warmup=1))


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def bench_main(argv):
    """Parse ``argv`` with the ``bench`` subcommand and run it; the exit status."""
    parser = argparse.ArgumentParser(prog="horq-keras")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", *argv])
    return args.func(args)


def test_cli_writes_json_and_plot(bench_models, tmp_path, capsys):
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    status = bench_main([bench_models["binary"], "--baseline", bench_models["float"],
                         "--runs", "5", "--warmup", "1", "--no-xnnpack",
                         "--json", str(out_json), "--plot", str(out_png)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "speed-up vs baseline" in printed and "binary convolutions 1/3 (33%)" in printed
    result = json.loads(out_json.read_text())
    assert result["settings"]["use_xnnpack"] is False and result["settings"]["runs"] == 5
    assert f"{result['speedup_vs_baseline']:.2f}x" in printed
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json", "bench.png"]  # no temp files


def test_cli_plot_with_operator_profile(tmp_path):
    """The plot shows the operator profile when there is one (lce_benchmark_model)."""
    from horq_keras.bench.report import format_summary, write_plot

    parsed = parse.parse_benchmark_model_output(LCE_BENCHMARK_LOG)
    ops = {"num_binary_convs": 2, "num_product_ops": 4, "binary_conv_share": 0.5,
           "num_binary_ops": 4, "num_ops": 9}
    result = {"target": "adb", "machine": {"machine": "aarch64"},
              "runner": {"kind": "lce_benchmark_model", "binary": "/x"}, "settings": {"threads": 1},
              "model": {**parsed, "path": "m.tflite", "ops": ops}, "baseline": None,
              "speedup_vs_baseline": None, "ratio_statistic": None}
    write_plot(tmp_path / "profile.png", result)
    assert (tmp_path / "profile.png").read_bytes()[:4] == b"\x89PNG"
    assert "time in LCE operators: 64%" in format_summary(result)


@pytest.mark.parametrize("argv, message", [
    (["m.tflite", "--runs", "0"], "--runs: must be an integer >= 1"),
    (["m.tflite", "--threads", "two"], "--threads: must be an integer >= 1"),
    (["m.tflite", "--target", "ftp://x"], "`--target` must be one of"),
    (["m.tflite", "--timeout", "-1"], "--timeout: must be a finite number > 0"),
])
def test_cli_rejects_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        bench_main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_checks_outputs_before_running(bench_models, tmp_path, capsys):
    missing_dir = tmp_path / "no" / "such" / "bench.json"
    assert bench_main([bench_models["binary"], "--json", str(missing_dir)]) == 2
    assert "`--json`" in capsys.readouterr().err
    assert bench_main([str(tmp_path / "absent.tflite")]) == 2
    assert "`model` must be a .tflite file" in capsys.readouterr().err
