"""``horq-keras train --strategy multi-worker``: two real worker processes on 127.0.0.1.

Each test starts two ``horq-keras train`` processes with their own ``TF_CONFIG`` (free
ports picked here), waits for them with bounded timeouts and kills every process it
started, even when an assertion fails. Slow (TensorFlow start-up and the collective's
set-up take tens of seconds per process on 2 cores): ``-m "not slow"`` skips them.
"""

import contextlib
import csv
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

from horq_keras.training.local_cluster import loopback_tf_configs
from horq_keras.training.rundir import STAGING

REAL_MNIST = pathlib.Path(__file__).resolve().parents[1] / "data" / "mnist"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(not REAL_MNIST.is_dir(), reason=f"real MNIST not installed at {REAL_MNIST}"),
]

RUN_TIMEOUT = 1500  # seconds for one cluster run on a (very) busy 2-core machine
FINGERPRINT = re.compile(r"final weights sha256: ([0-9a-f]{64})")


class LocalCluster:
    """Worker processes of one ``horq-keras train`` command, one ``TF_CONFIG`` each."""

    def __init__(self, tmp_path, argv, workers=2):
        self.tmp_path, self.argv = tmp_path, argv
        self.tf_configs = loopback_tf_configs(workers)
        self.scratch = tmp_path / "worker_tmp"  # TMPDIR of the workers: must end up empty
        self.scratch.mkdir(exist_ok=True)
        self.processes, self.logs, self.launches = [], [], 0

    def start(self):
        """Start every worker; returns their log files."""
        self.launches += 1
        self.processes, self.logs = [], []
        for index, tf_config in enumerate(self.tf_configs):
            log = self.tmp_path / f"launch{self.launches}_worker{index}.log"
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": str(self.scratch),
                   "TF_CONFIG": tf_config}
            with open(log, "wb") as out:
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-m", "horq_keras.cli", "train", *self.argv],
                    stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.tmp_path))
            self.logs.append(log)
        return self.logs

    def wait(self, timeout=RUN_TIMEOUT):
        """Exit codes of all workers (killing them all if one is still running at timeout)."""
        deadline = time.monotonic() + timeout
        codes = []
        for process in self.processes:
            try:
                codes.append(process.wait(timeout=max(1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail(f"workers still running after {timeout} s; logs:\n{self.tails()}")
        return codes

    def kill(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)

    def log(self, index):
        return self.logs[index].read_text(errors="replace")

    def tails(self, chars=3000):
        return "\n".join(f"--- worker {i} ---\n{self.log(i)[-chars:]}"
                         for i in range(len(self.logs)))


@pytest.fixture
def cluster_factory(tmp_path):
    clusters = []

    def make(argv):
        clusters.append(LocalCluster(tmp_path, argv))
        return clusters[-1]

    yield make
    for cluster in clusters:
        cluster.kill()


def train_argv(output_dir, epochs, limit_train):
    # --batch-size is per replica: the global batch is 2 x 32 = 64.
    return ["--epochs", str(epochs), "--limit-train", str(limit_train), "--limit-test", "256",
            "--batch-size", "32", "--data-dir", str(REAL_MNIST), "--output-dir",
            str(output_dir), "--strategy", "multi-worker"]


def history_epochs(folder):
    with open(folder / "history.csv", newline="") as f:
        return [int(float(row["epoch"])) for row in csv.DictReader(f)]


def assert_finished(cluster, output_dir, left_by_kill=()):
    """Both workers ended with the same weights; only the chief wrote, and it converted.

    ``left_by_kill``: what killed processes left in the workers' TMPDIR (a SIGKILLed
    process cleans nothing); the finished run may leave nothing else.
    """
    fingerprints = [FINGERPRINT.findall(cluster.log(i)) for i in range(2)]
    assert all(len(found) == 1 for found in fingerprints), cluster.tails()
    assert fingerprints[0] == fingerprints[1]
    report = json.loads((output_dir / "report.json").read_text())
    assert report["converted"] and report["parity_ok"] and report["top1_agreement"] >= 0.99
    distribution = report["config"]["distribution"]
    assert distribution["strategy"] == "multi-worker" and distribution["num_workers"] == 2
    assert distribution["replicas"] == 2 and distribution["global_batch"] == 64
    assert (output_dir / "model.tflite").stat().st_size > 0
    assert "Results in" not in cluster.log(1)  # the other worker converts nothing
    assert set(cluster.scratch.iterdir()) <= set(left_by_kill)  # its temporary files are gone
    return report


def test_two_workers_train_identical_weights_and_chief_converts(tmp_path, cluster_factory):
    output_dir = tmp_path / "run"
    cluster = cluster_factory(train_argv(output_dir, epochs=2, limit_train=512))
    cluster.start()
    assert cluster.wait() == [0, 0], cluster.tails()
    for index in range(2):
        start_line = cluster.log(index)
        assert "strategy: multi-worker (MultiWorkerMirroredStrategy), replicas: 2" in start_line
        assert "global batch 64 = 32 per replica x 2" in start_line
        assert "auto-shard policy: DATA (mnist)" in start_line
    assert "worker 0 of 2 (chief)" in cluster.log(0) and "worker 1 of 2;" in cluster.log(1)
    for index in range(2):  # the progress bar shows the cluster's accuracy, not a sum
        shown = [float(a) for a in re.findall(r" accuracy: ([0-9.]+)", cluster.log(index))]
        assert shown and max(shown) <= 1.0, shown
    assert_finished(cluster, output_dir)
    assert history_epochs(output_dir) == [0, 1]
    # The learning rate was scaled linearly with the global batch (64 / 32 = 2 x 2e-3).
    config = json.loads((output_dir / "run_config.json").read_text())
    assert config["distribution"]["scaled_learning_rate"] == pytest.approx(4e-3)
    assert config["recipe_values"]["learning_rate"] == pytest.approx(4e-3)
    assert config["recipe_values"]["batch_size"] == 64
    assert config["recipe_values"]["lr_scaling"] == "linear"


def wait_for(condition, timeout, cluster, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if any(p.poll() is not None for p in cluster.processes):
            pytest.fail(f"a worker exited while waiting for {what}:\n{cluster.tails()}")
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}:\n{cluster.tails()}")


def in_second_epoch(cluster, steps):
    """The chief's progress bar shows at least ``steps`` batches of epoch 2."""
    _, _, second = cluster.log(0).partition("Epoch 2/3")
    return any(int(done) >= steps for done in re.findall(r"(\d+)/\d+ \[", second))


def test_sigkill_a_worker_in_epoch_two_then_resume(tmp_path, cluster_factory):
    output_dir = tmp_path / "run"
    # 1024 images / global batch 64 = 16 steps per epoch.
    cluster = cluster_factory(train_argv(output_dir, epochs=3, limit_train=1024))
    cluster.start()
    wait_for(lambda: in_second_epoch(cluster, steps=4), RUN_TIMEOUT, cluster,
             "the middle of epoch 2")
    cluster.processes[1].send_signal(signal.SIGKILL)
    # The survivor cannot finish the epoch without its peer: it fails or hangs in the
    # all-reduce. Give it a bounded time to notice, then stop it as a scheduler would.
    with contextlib.suppress(subprocess.TimeoutExpired):
        cluster.processes[0].wait(timeout=60)
    cluster.kill()
    assert cluster.processes[1].returncode == -signal.SIGKILL
    staging = output_dir / STAGING  # the chief's unfinished run
    assert not (output_dir / "model.h5").exists()  # nothing final written by a broken run
    assert history_epochs(staging) == [0]  # epoch 1 finished and was backed up
    assert any((staging / "backup").rglob("checkpoint"))
    left_by_kill = list(cluster.scratch.iterdir())

    cluster.start()  # the same command on both workers
    assert cluster.wait() == [0, 0], cluster.tails()
    resumed = cluster.log(0)
    assert "Epoch 1/3" not in resumed and "Epoch 2/3" in resumed  # resumed after epoch 1
    report = assert_finished(cluster, output_dir, left_by_kill)
    assert report["epochs_run"] == [1, 2]
    assert history_epochs(output_dir) == [0, 1, 2]  # none lost, none repeated
    assert not staging.exists()  # published: the backup went with the staging folder
