"""`horq-keras bench --target ssh://...` against a real OpenSSH server on 127.0.0.1.

The module starts Debian's ``sshd`` on a free port of 127.0.0.1 with a throwaway host
key and user key (made by ssh-keygen in a temporary directory), as the current user.
The "board" is this machine: it runs the Python runner with this test's interpreter
(``--remote-python``), or the stand-in ``lce_benchmark_model`` of test_bench.py. No
traffic leaves 127.0.0.1.
"""

import getpass
import glob
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import threading
import time
import types

import pytest
from test_bench import bench_main, bench_models, check_against_fake_log, fake_benchmark_binary  # noqa: F401

from horq_keras.bench import timing
from horq_keras.bench.targets import BenchError, TargetOptions

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"

pytestmark = pytest.mark.skipif(
    not (os.path.exists(SSHD) and all(shutil.which(tool) for tool in ("ssh", "scp", "ssh-keygen"))),
    reason="OpenSSH is not installed (Debian: apt-get install openssh-server openssh-client)",
)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_listening(process, port, log_path):
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            log = log_path.read_text()
            if "privilege separation directory" in log and os.geteuid() != 0:
                pytest.skip(f"sshd cannot start as a non-root user here: {log.strip()}")
            pytest.fail(f"sshd exited with status {process.returncode}: {log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"sshd does not listen on 127.0.0.1:{port}: {log_path.read_text()}")
            time.sleep(0.1)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A running sshd: ``port``, ``user``, ``identity`` (accepted key), ``other_key``
    (a key it does not accept), ``known_hosts`` (holding its host key), ``log``."""
    directory = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "user_key", "other_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name,
                        "-f", str(directory / name)], check=True)
    (directory / "authorized_keys").write_text((directory / "user_key.pub").read_text())
    port = _free_port()
    config = directory / "sshd_config"
    config.write_text("\n".join([
        "ListenAddress 127.0.0.1",
        f"Port {port}",
        f"HostKey {directory / 'host_key'}",
        f"AuthorizedKeysFile {directory / 'authorized_keys'}",
        "PidFile none",
        "StrictModes no",
        "UsePAM no",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "Subsystem sftp internal-sftp",  # scp uses the SFTP protocol
        "",
    ]))
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    log_path = directory / "sshd.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_listening(process, port, log_path)
        key_type, key = (directory / "host_key.pub").read_text().split()[:2]
        known_hosts = directory / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {key_type} {key}\n")
        yield types.SimpleNamespace(
            port=port, user=getpass.getuser(), identity=str(directory / "user_key"),
            other_key=directory / "other_key", known_hosts=str(known_hosts), log=log_path,
            directory=directory,
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _target(sshd, port=None):
    return f"ssh://{sshd.user}@127.0.0.1:{port or sshd.port}"


def _options(sshd, **changes):
    options = {
        "identity": sshd.identity,
        "ssh_options": (f"UserKnownHostsFile={sshd.known_hosts}",),
        "remote_python": sys.executable,
        "connect_timeout": 5,
        "timeout": 120.0,
    }
    return TargetOptions(**{**options, **changes})


def _work_dirs():
    return set(glob.glob("/tmp/horq-bench.*"))


_QUICK = timing.Settings(runs=3, warmup=1)


def test_ssh_cli_with_the_python_runner(sshd, bench_models, tmp_path):  # noqa: F811
    before = _work_dirs()
    out = tmp_path / "bench_ssh.json"
    status = bench_main([
        bench_models["binary"], "--baseline", bench_models["float"], "--target", _target(sshd),
        "--identity", sshd.identity, "--ssh-option", f"UserKnownHostsFile={sshd.known_hosts}",
        "--remote-python", sys.executable, "--runs", "8", "--warmup", "2", "--json", str(out),
    ])
    assert status == 0
    result = json.loads(out.read_text())
    assert result["target"] == _target(sshd)
    assert result["machine"]["hostname"] == platform.node()
    assert result["machine"]["machine"] == platform.machine()
    assert result["runner"]["kind"] == "python" and result["runner"]["python"] == sys.executable
    assert result["model"]["latency_ms"]["count"] == result["baseline"]["latency_ms"]["count"] == 8
    assert result["speedup_vs_baseline"] == pytest.approx(
        result["baseline"]["latency_ms"]["median"] / result["model"]["latency_ms"]["median"])
    assert f"Accepted publickey for {sshd.user}" in sshd.log.read_text()
    assert _work_dirs() == before  # the board's work directory is gone


def test_ssh_with_lce_benchmark_binary(sshd, bench_models, fake_benchmark_binary):  # noqa: F811
    binary, read_log = fake_benchmark_binary
    settings = timing.Settings(threads=2, runs=5, warmup=2, use_xnnpack=False, op_profiling=False)
    result = timing.benchmark(bench_models["binary"], bench_models["float"], target=_target(sshd),
                             settings=settings, options=_options(sshd), benchmark_binary=binary)
    entries = read_log()
    workdir = os.path.dirname(entries[0]["flags"]["graph"])
    assert os.path.basename(workdir).startswith("horq-bench.")
    check_against_fake_log(result, entries, settings,
                           [f"{workdir}/model.tflite", f"{workdir}/baseline.tflite"])
    assert result["runner"] == {"kind": "lce_benchmark_model", "binary": binary}
    assert not os.path.exists(workdir)


def _fails(message, *args, **kwargs):
    """Run ``timing.benchmark``; assert it raises BenchError matching ``message`` fast."""
    start = time.monotonic()
    with pytest.raises(BenchError, match=message):
        timing.benchmark(*args, **kwargs)
    return time.monotonic() - start


def test_ssh_unreachable_port(sshd, bench_models):  # noqa: F811
    elapsed = _fails("cannot reach the board.*Connection refused", bench_models["binary"],
                     target=_target(sshd, port=_free_port()), options=_options(sshd))
    assert elapsed < 15


def test_ssh_silent_server_times_out(sshd, bench_models):  # noqa: F811
    """A server that accepts but never speaks SSH: ConnectTimeout bounds the wait."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        accepted = []
        thread = threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True)
        thread.start()
        elapsed = _fails("cannot reach the board.*timed out", bench_models["binary"],
                         target=_target(sshd, port=server.getsockname()[1]),
                         options=_options(sshd, connect_timeout=2))
        for connection, _ in accepted:
            connection.close()
    assert 1.5 < elapsed < 20


def test_ssh_rejected_key(sshd, bench_models):  # noqa: F811
    _fails("authentication failed", bench_models["binary"], target=_target(sshd),
           options=_options(sshd, identity=str(sshd.other_key)))


def test_ssh_unknown_host_key(sshd, bench_models, tmp_path):  # noqa: F811
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    _fails("host key verification failed", bench_models["binary"], target=_target(sshd),
           options=_options(sshd, ssh_options=(f"UserKnownHostsFile={empty}",)))


def test_ssh_changed_host_key(sshd, bench_models, tmp_path):  # noqa: F811
    """Another key recorded for the host (a man in the middle, or a reinstalled board)."""
    key_type, key = (sshd.directory / "other_key.pub").read_text().split()[:2]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {key_type} {key}\n")
    _fails("host key verification failed", bench_models["binary"], target=_target(sshd),
           options=_options(sshd, ssh_options=(f"UserKnownHostsFile={wrong}",)))


def test_ssh_missing_benchmark_binary(sshd, bench_models):  # noqa: F811
    before = _work_dirs()
    _fails("benchmark binary '/nonexistent/lce_benchmark_model' is missing", bench_models["binary"],
           target=_target(sshd), options=_options(sshd),
           benchmark_binary="/nonexistent/lce_benchmark_model", settings=_QUICK)
    assert _work_dirs() == before  # cleaned up after the failure too


def test_ssh_missing_remote_python(sshd, bench_models):  # noqa: F811
    _fails("Python interpreter '/nonexistent/python3' is missing", bench_models["binary"],
           target=_target(sshd), options=_options(sshd, remote_python="/nonexistent/python3"),
           settings=_QUICK)


def test_ssh_model_the_runner_cannot_load(sshd, bench_models):  # noqa: F811
    _fails("cannot run the model .*unresolved custom op: LceBconv9d", bench_models["unloadable"],
           target=_target(sshd), options=_options(sshd), settings=_QUICK)


def test_ssh_command_timeout(sshd, bench_models, tmp_path):  # noqa: F811
    """A benchmark that hangs is stopped by --timeout."""
    hanging = tmp_path / "hanging_benchmark"
    hanging.write_text("#!/bin/sh\nsleep 30\n")
    hanging.chmod(0o755)
    elapsed = _fails("timed out after 10 s", bench_models["binary"], target=_target(sshd),
                     options=_options(sshd, timeout=10.0), benchmark_binary=str(hanging),
                     settings=_QUICK)
    assert elapsed < 40


def _alive(pid):
    """Whether process ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _hanging_runner(tmp_path):
    """A benchmark binary that records its pid and, until killed, whether its work
    directory still exists (an 'orphan' line means it outlived the directory)."""
    pid_file, marker = tmp_path / "runner.pid", tmp_path / "orphan"
    script = tmp_path / "hanging_runner"
    script.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do case $a in --graph=*) g=${a#--graph=};; esac; done\n'
        'w=$(dirname "$g")\n'
        f'echo "$$ $w" > {pid_file}\n'
        f'while :; do [ -d "$w" ] || echo orphan >> {marker}; sleep 0.1; done\n'
    )
    script.chmod(0o755)
    return script, pid_file, marker


def _assert_runner_killed_before_clean_up(pid_file, marker):
    pid, workdir = pid_file.read_text().split()
    pid = int(pid)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "the remote runner still runs"
    time.sleep(0.3)
    assert not marker.exists(), "the runner ran on after its work directory was removed"
    assert not os.path.exists(workdir)


def test_ssh_timeout_kills_the_remote_runner(sshd, bench_models, tmp_path):  # noqa: F811
    script, pid_file, marker = _hanging_runner(tmp_path)
    _fails("timed out after 5 s", bench_models["binary"], target=_target(sshd),
           options=_options(sshd, timeout=5.0), benchmark_binary=str(script), settings=_QUICK)
    _assert_runner_killed_before_clean_up(pid_file, marker)


def test_ssh_interrupt_kills_the_remote_runner(sshd, bench_models, tmp_path,  # noqa: F811
                                               monkeypatch):
    """Ctrl-C while the runner runs: subprocess.run kills the local ssh and re-raises."""
    script, pid_file, marker = _hanging_runner(tmp_path)
    real_run = subprocess.run

    def interrupted(argv, **kwargs):
        if not any("hanging_runner" in part for part in argv):
            return real_run(argv, **kwargs)
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        process.kill()  # what subprocess.run does to its child on KeyboardInterrupt
        process.wait()
        raise KeyboardInterrupt

    monkeypatch.setattr("horq_keras.bench.targets.subprocess.run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        timing.benchmark(bench_models["binary"], target=_target(sshd), options=_options(sshd),
                        benchmark_binary=str(script), settings=_QUICK)
    _assert_runner_killed_before_clean_up(pid_file, marker)
