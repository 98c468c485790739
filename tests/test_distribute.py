"""``horq_keras.distribute``: TF_CONFIG, strategy choice, batch and LR scaling, bad input."""

import dataclasses
import json
import math

import horq_keras  # noqa: F401  (selects Keras 2 before TensorFlow is used)
import numpy as np
import pytest
import tensorflow as tf

from horq_keras.cli import main
from horq_keras.training import distribute
from horq_keras.training.cluster import (
    Cluster,
    DistributeError,
    count_replicas,
    parse_tf_config,
    resolve_strategy,
    scale_learning_rate,
    split_batch,
)
from horq_keras.training.distribute import shard_policy, weights_fingerprint

WORKERS = ["10.0.0.1:2222", "10.0.0.2:2222", "10.0.0.3:2222"]


def tf_config(cluster=None, task=None):
    return json.dumps({"cluster": cluster or {"worker": WORKERS},
                       "task": task or {"type": "worker", "index": 1}})


def test_parse_worker_cluster():
    cluster = parse_tf_config(tf_config())
    assert cluster == Cluster(tuple(WORKERS), "worker", 1)
    assert cluster.num_workers == 3 and cluster.rank == 1 and not cluster.is_chief
    assert parse_tf_config(tf_config(task={"type": "worker", "index": 0})).is_chief


def test_parse_cluster_with_chief():
    config = {"chief": ["10.0.0.9:2222"], "worker": WORKERS[:2]}
    chief = parse_tf_config(tf_config(config, {"type": "chief", "index": 0}))
    worker0 = parse_tf_config(tf_config(config, {"type": "worker", "index": 0}))
    assert chief.is_chief and chief.num_workers == 3
    assert worker0.rank == 1 and not worker0.is_chief  # worker 0 is not the chief here


@pytest.mark.parametrize("text", [None, "", "   "])
def test_no_tf_config(text):
    assert parse_tf_config(text) is None


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    (json.dumps({"task": {"type": "worker", "index": 0}}), 'missing "cluster"'),
    (json.dumps({"cluster": {"worker": WORKERS}}), 'missing "task"'),
    (json.dumps({"cluster": {"worker": WORKERS}, "task": {"type": "worker"}}), 'missing "task"'),
    (tf_config(task={"type": "worker", "index": 3}), "task index 3 is out of range for the 3"),
    (tf_config(task={"type": "worker", "index": -1}), "task index -1 is out of range"),
    (tf_config(task={"type": "worker", "index": "0"}), "task index '0' is out of range"),
    (tf_config(task={"type": "chief", "index": 0}), 'task type "chief" has no address'),
    (tf_config(task={"type": "evaluator", "index": 0}), "task type 'evaluator' cannot train"),
    (tf_config({"worker": WORKERS, "ps": ["h:1"]}), "task types ['ps'] are not supported"),
    (tf_config({"worker": ["10.0.0.1"]}), 'must be a list of "host:port"'),
    (tf_config({"worker": "10.0.0.1:2222"}), 'must be a list of "host:port"'),
    (tf_config({"chief": ["a:1", "b:1"], "worker": WORKERS}), 'at most one "chief"'),
])
def test_bad_tf_config(text, message):
    with pytest.raises(DistributeError, match="^TF_CONFIG: ") as error:
        parse_tf_config(text)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_resolve_strategy():
    cluster = parse_tf_config(tf_config())
    assert resolve_strategy("auto", cluster, 0) == "multi-worker"
    assert resolve_strategy("auto", None, 4) == "mirrored"
    assert resolve_strategy("auto", None, 0) == "one"
    assert resolve_strategy("one", cluster, 4) == "one"
    assert resolve_strategy("mirrored", None, 2) == "mirrored"
    with pytest.raises(DistributeError, match="mirrored needs at least 2 GPUs; this machine "
                                              "has 1"):
        resolve_strategy("mirrored", None, 1, 1)
    with pytest.raises(DistributeError, match="multi-worker needs TF_CONFIG"):
        resolve_strategy("multi-worker", None, 8)
    with pytest.raises(DistributeError, match="--strategy must be one of"):
        resolve_strategy("parameter-server", None, 1)


def test_count_replicas():
    cluster = parse_tf_config(tf_config())
    assert count_replicas("multi-worker", cluster, 0, 0) == 3  # no GPU: one CPU replica each
    assert count_replicas("multi-worker", cluster, 0, 4) == 12  # 3 workers x 4 GPUs
    assert count_replicas("mirrored", None, 4, 4) == 4
    assert count_replicas("one", None, 4, 4) == 1


def test_global_batch():
    assert split_batch(32, 4) == (32, 128)
    assert split_batch(32, 4, global_batch=256) == (64, 256)
    with pytest.raises(DistributeError, match="100 is not divisible by the 3 replicas"):
        split_batch(32, 3, global_batch=100)


@pytest.mark.parametrize("rule, factor", [("linear", 8.0), ("sqrt", math.sqrt(8)),
                                          ("none", 1.0)])
def test_learning_rate_scaling(rule, factor):
    assert scale_learning_rate(0.05, rule, 1024, 128) == pytest.approx(0.05 * factor)


def test_unknown_lr_scaling():
    with pytest.raises(DistributeError, match="--lr-scaling must be one of"):
        scale_learning_rate(0.1, "cubic", 256, 128)


def test_shard_policies():
    policy = tf.data.experimental.AutoShardPolicy
    assert shard_policy("tfds:imagenet2012") == policy.FILE
    assert shard_policy("tfrecord") == policy.FILE
    for source in ("mnist", "idx:/data/fashion", "folder:/data/images"):
        assert shard_policy(source) == policy.DATA
    with pytest.raises(DistributeError, match="no auto-shard policy for data source 'csv'"):
        shard_policy("csv:/x")


def test_shard_sets_the_policy_on_the_dataset():
    distribution = distribute.Distribution.create(batch_size=8, learning_rate=1e-3,
                                                  strategy="one", tf_config="")
    dataset, name = distribution.shard(tf.data.Dataset.range(10), "tfds:mnist")
    assert name == "FILE"
    assert (dataset.options().experimental_distribute.auto_shard_policy
            == tf.data.experimental.AutoShardPolicy.FILE)


def test_one_device_distribution():
    distribution = distribute.Distribution.create(batch_size=32, learning_rate=1e-3,
                                                  strategy="auto", tf_config="")
    assert distribution.kind == "one" and distribution.replicas == 1 and distribution.is_chief
    assert (distribution.per_replica_batch, distribution.global_batch) == (32, 32)
    assert "strategy: one (default strategy), replicas: 1" in distribution.describe()
    assert distribution.to_config()["global_batch"] == 32


def test_fingerprint_sees_every_weight():
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])
    before = weights_fingerprint(model)
    assert weights_fingerprint(model) == before
    kernel, bias = model.get_weights()
    model.set_weights([kernel, bias + np.float32(1e-7)])
    assert weights_fingerprint(model) != before


def test_non_chief_writes_to_a_temporary_directory(tmp_path):
    chief = distribute.Distribution(None, "multi-worker",
                                    parse_tf_config(tf_config(task={"type": "worker",
                                                                    "index": 0})),
                                    32, 64, 1e-3, "linear", False)
    other = distribute.Distribution(None, "multi-worker", parse_tf_config(tf_config()),
                                    32, 64, 1e-3, "linear", False)
    with chief.write_dir(tmp_path) as directory:
        assert directory == tmp_path
        assert chief.backup_callback(tmp_path / ".partial").backup_dir == str(
            tmp_path / ".partial" / "backup")
    with pytest.raises(RuntimeError), other.write_dir(tmp_path) as directory:
        assert directory != tmp_path and directory.is_dir()
        # Every worker restores from the chief's backup, in the shared output folder.
        assert other.backup_callback(directory / ".partial").backup_dir == str(
            tmp_path / ".partial" / "backup")
        (directory / "model.h5").write_bytes(b"x")
        raise RuntimeError("worker failed")
    assert not directory.exists()  # removed even on error
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("env, args, message", [
    ("{oops", [], "TF_CONFIG: not valid JSON"),
    (tf_config(task={"type": "worker", "index": 5}), [], "TF_CONFIG: task index 5 is out of range"),
    (tf_config(), ["--global-batch-size", "100"],
     "--global-batch-size 100 is not divisible by the 3 replicas"),
    ("", ["--strategy", "mirrored"], "--strategy mirrored needs at least 2 GPUs"),
    ("", ["--strategy", "multi-worker"], "--strategy multi-worker needs TF_CONFIG"),
])
def test_cli_bad_input_exit_2(tmp_path, monkeypatch, capsys, env, args, message):
    monkeypatch.setenv("TF_CONFIG", env)
    out = tmp_path / "run"
    assert main(["train", "--output-dir", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("horq-keras train: error: ") and message in err
    assert err.count("\n") == 1  # one line
    assert not out.exists()  # nothing written


class StopAtStep(tf.keras.callbacks.Callback):
    """Record every (epoch, batch) begun; raise at ``stop`` (like a kill)."""

    def __init__(self, stop=None):
        super().__init__()
        self.stop, self.seen, self.epoch = stop, [], None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.stop:
            raise RuntimeError("interrupted")
        self.seen.append((self.epoch, batch))


def test_backup_every_n_steps_resumes_mid_epoch(tmp_path):
    distribution = distribute.Distribution.create(batch_size=4, learning_rate=1e-2,
                                                  strategy="one", tf_config="")
    distribution.backup_every = 2  # --backup-every 2
    rng = np.random.default_rng(0)
    x, y = rng.random((24, 3), dtype=np.float32), rng.random((24, 1), dtype=np.float32)

    def fit(callback):
        tf.keras.utils.set_random_seed(0)
        model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(1)])
        model.compile(tf.keras.optimizers.SGD(distribution.learning_rate), "mse")
        backup = distribution.backup_callback(tmp_path)  # into tmp_path / "backup"
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0,
                  callbacks=[backup, callback])
        return model

    first = StopAtStep(stop=(1, 3))  # 6 steps per epoch; dies in step 4 of epoch 2
    with pytest.raises(RuntimeError, match="interrupted"):
        fit(first)
    resumed = StopAtStep()
    fit(resumed)
    # Backed up after step 2 of epoch 2 (every 2 steps): the run goes on from step 3.
    assert resumed.seen == [(1, 2), (1, 3), (1, 4), (1, 5)]


def test_scaled_recipe():
    from horq_keras.training.recipes import RECIPES

    recipe = dataclasses.replace(RECIPES["groupnet-imagenet"], float_learning_rate=0.05)
    distribution = distribute.Distribution(None, "multi-worker", None, recipe.batch_size,
                                           4 * recipe.batch_size, 4 * recipe.learning_rate,
                                           "linear", False)
    scaled = distribution.scale(recipe)
    assert scaled.batch_size == 4 * recipe.batch_size  # the pipeline batches globally
    assert scaled.learning_rate == pytest.approx(4 * recipe.learning_rate)
    assert scaled.float_learning_rate == pytest.approx(4 * 0.05)  # same rule, both stages
    assert scaled.momentum == recipe.momentum
