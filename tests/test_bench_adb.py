"""`horq-keras bench --target adb[:serial]`.

With no phone here: the real adb client (Debian package ``adb``) shows that a missing
device fails fast and clearly; a stand-in ``adb`` on PATH, whose "device" is a directory
of this machine (push copies, shell runs ``sh -c``), runs the whole push / run / parse /
clean-up path with the stand-in ``lce_benchmark_model`` of test_bench.py.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
from test_bench import bench_models, check_against_fake_log, fake_benchmark_binary  # noqa: F401

from horq_keras.bench import timing
from horq_keras.bench.targets import BenchError, TargetOptions

_QUICK = timing.Settings(runs=3, warmup=1)

# Stand-in for adb: `adb devices` prints $FAKE_ADB_DEVICES (SERIAL<TAB>STATE lines);
# `adb -s SERIAL push SRC... DIR/` copies; `adb -s SERIAL shell CMD` runs `sh -c CMD`.
# Every call is logged to $FAKE_ADB_LOG.
_FAKE_ADB = r'''#!{python}
import json, os, shutil, subprocess, sys
args = sys.argv[1:]
with open(os.environ["FAKE_ADB_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
devices = dict(line.split("\t") for line in os.environ["FAKE_ADB_DEVICES"].splitlines() if line)
if args == ["devices"]:
    print("List of devices attached")
    for serial, state in devices.items():
        print(f"{{serial}}\t{{state}}")
    print()
    sys.exit(0)
if args[0] != "-s" or devices.get(args[1]) != "device":
    sys.exit(f"adb: device '{{args[1]}}' not found")
command, rest = args[2], args[3:]
if command == "push":
    *sources, destination = rest
    for source in sources:
        shutil.copy(source, destination)
    print(f"{{len(sources)}} files pushed.")
elif command == "shell":
    sys.exit(subprocess.call(["sh", "-c", rest[0]]))
else:
    sys.exit(f"adb: unknown command {{command}}")
'''


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    """Put the stand-in adb first on PATH; returns the device directory and its log."""
    bin_dir, device_dir = tmp_path / "bin", tmp_path / "device" / "data" / "local" / "tmp"
    bin_dir.mkdir()
    device_dir.mkdir(parents=True)
    adb = bin_dir / "adb"
    adb.write_text(_FAKE_ADB.format(python=sys.executable))
    adb.chmod(0o755)
    log = tmp_path / "adb.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_LOG", str(log))
    monkeypatch.setenv("FAKE_ADB_DEVICES", "R5CT1234\tdevice\n")
    return device_dir, log


def test_adb_push_run_parse_and_clean_up(bench_models, fake_benchmark_binary, fake_adb):  # noqa: F811
    device_dir, adb_log = fake_adb
    binary, read_log = fake_benchmark_binary
    settings = timing.Settings(threads=4, runs=4, warmup=1)
    result = timing.benchmark(bench_models["binary"], bench_models["float"], target="adb",
                             settings=settings, options=TargetOptions(device_dir=str(device_dir)),
                             benchmark_binary=binary)
    workdir = f"{device_dir}/horq-bench"
    check_against_fake_log(result, read_log(), settings,
                           [f"{workdir}/model.tflite", f"{workdir}/baseline.tflite"])
    assert result["runner"] == {"kind": "lce_benchmark_model", "binary": f"{workdir}/lce_benchmark_model"}
    assert result["target"] == "adb" and result["machine"]["cpus"]
    calls = [json.loads(line) for line in adb_log.read_text().splitlines()]
    assert calls[0] == ["devices"]
    assert all(call[:2] == ["-s", "R5CT1234"] for call in calls[1:])  # the one device, by serial
    assert ["-s", "R5CT1234", "shell", f"chmod 755 {workdir}/lce_benchmark_model"] in calls
    assert not os.path.exists(workdir)  # removed at the end


@pytest.mark.parametrize("devices, target, message", [
    ("", "adb", "no Android device attached"),
    ("A1\tdevice\nB2\tdevice\n", "adb", "exactly one usable device.*A1 \\(device\\), B2 \\(device\\)"),
    ("A1\tunauthorized\n", "adb:A1", "'unauthorized', not ready: unlock the phone and accept"),
    ("A1\tdevice\n", "adb:C3", "'C3' is not attached; `adb devices` lists: A1"),
])
def test_adb_device_selection(bench_models, fake_benchmark_binary, fake_adb, monkeypatch,  # noqa: F811
                              devices, target, message):
    monkeypatch.setenv("FAKE_ADB_DEVICES", devices)
    with pytest.raises(BenchError, match=message):
        timing.benchmark(bench_models["binary"], target=target, settings=_QUICK,
                        options=TargetOptions(device_dir=str(fake_adb[0])),
                        benchmark_binary=fake_benchmark_binary[0])


def test_adb_missing_local_benchmark_binary(bench_models, fake_adb, tmp_path):  # noqa: F811
    """Checked before any adb call."""
    message = "`--benchmark-binary` .* does not exist here: download LCE's lce_benchmark_model_android_arm64"
    with pytest.raises(ValueError, match=message):
        timing.benchmark(bench_models["binary"], target="adb", settings=_QUICK,
                        options=TargetOptions(device_dir=str(fake_adb[0])),
                        benchmark_binary=str(tmp_path / "lce_benchmark_model"))
    assert not fake_adb[1].exists()  # the stand-in adb's log: never called


def _stop_adb_server(port):
    """Stop the test's own adb server; a hung `adb kill-server` must not fail the test."""
    try:
        subprocess.run(["adb", "kill-server"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=10, check=False)
    except subprocess.TimeoutExpired:
        pass
    subprocess.run(["pkill", "-f", f"adb -L tcp:{port} "], check=False)


@pytest.mark.skipif(shutil.which("adb") is None,
                    reason="adb is not installed (Debian: apt-get install adb)")
def test_real_adb_without_device_fails_fast(bench_models, fake_benchmark_binary, monkeypatch):  # noqa: F811
    """The real adb client, with its own server on a free port of 127.0.0.1, no device."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(port))
    start = time.monotonic()
    try:
        with pytest.raises(BenchError, match="no Android device attached: `adb devices` lists none"):
            timing.benchmark(bench_models["binary"], target="adb", settings=_QUICK,
                            benchmark_binary=fake_benchmark_binary[0])
        assert time.monotonic() - start < 35
        # bench started adb's server (none ran on this port) and stopped it again
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
            except ConnectionRefusedError:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"bench left adb's server running on port {port}")
    finally:
        _stop_adb_server(port)
