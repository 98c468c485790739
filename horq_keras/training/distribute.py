"""Scale-out training with ``tf.distribute``: the strategy, sharding, outputs, backups.

:class:`Distribution` starts the strategy that :mod:`horq_keras.training.cluster`
resolved (``one``: the default strategy; ``mirrored``: ``tf.distribute.MirroredStrategy``
over the GPUs of this machine; ``multi-worker``: ``tf.distribute.MultiWorkerMirroredStrategy``
over the machines of ``TF_CONFIG``, synchronous all-reduce, larq's ``QuantizedVariable``
wrapping its distributed variables), and holds the run's batch and learning rate. It also
gives:

- the auto-shard policy of each data source: ``FILE`` for file-based sources (TFDS,
  TFRecords: each worker reads its own files), ``DATA`` for in-memory arrays and image
  folders (MNIST, IDX, ``folder:``; each worker keeps its share of every batch);
- where a worker writes: the chief into the output directory; every other worker into a
  temporary directory of its own, removed at the end (the usual ``tf.distribute`` way);
- ``BackupAndRestore`` at the end of every epoch or every N steps.

Create the :class:`Distribution` before any other TensorFlow work: collective ops
(multi-worker) and logical devices can only be configured at program start.
"""

import contextlib
import dataclasses
import hashlib
import os
import pathlib
import shutil
import tempfile

import tensorflow as tf

from horq_keras.training import cluster
from horq_keras.training.mixed_precision import set_mixed_precision

__all__ = ["SHARD_POLICIES", "Distribution", "mirrored_devices", "shard_policy",
           "weights_fingerprint"]

# The tf.distribute class behind each strategy, for the start-up line.
_STRATEGY_NAMES = {"one": "default strategy", "mirrored": "MirroredStrategy",
                   "multi-worker": "MultiWorkerMirroredStrategy"}

_AUTO_SHARD = tf.data.experimental.AutoShardPolicy

#: Auto-shard policy per data source kind (the part of ``--data`` before the colon).
SHARD_POLICIES = {
    "mnist": _AUTO_SHARD.DATA,
    "idx": _AUTO_SHARD.DATA,
    "folder": _AUTO_SHARD.DATA,
    "tfds": _AUTO_SHARD.FILE,
    "tfrecord": _AUTO_SHARD.FILE,
}

def shard_policy(source):
    """The ``tf.data`` auto-shard policy for a data source kind (``mnist``, ``tfds``, ...)."""
    kind = source.split(":", 1)[0]
    if kind not in SHARD_POLICIES:
        raise cluster.DistributeError(f"no auto-shard policy for data source {kind!r}; known: "
                              f"{sorted(SHARD_POLICIES)}")
    return SHARD_POLICIES[kind]


def weights_fingerprint(model):
    """SHA-256 over the bytes of every weight of ``model``: equal on every worker."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(weight.tobytes())
    return digest.hexdigest()


def _make_strategy(kind):
    if kind == "one":
        return tf.distribute.get_strategy()  # the default strategy: one device, no copies
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(mirrored_devices())
    return tf.distribute.MultiWorkerMirroredStrategy()


def mirrored_devices():
    """The devices of a mirrored run: every GPU, else the logical CPUs when there are >= 2.

    Logical CPU devices (``tf.config.set_logical_device_configuration``) are how tests run
    replica code without GPUs; a plain CPU machine has one CPU device and no mirror.
    """
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return [device.name for device in gpus]
    cpus = tf.config.list_logical_devices("CPU")
    return [device.name for device in cpus] if len(cpus) > 1 else None


@dataclasses.dataclass
class Distribution:
    """How one run is spread: the strategy, its replicas, the batch and the learning rate."""

    strategy: tf.distribute.Strategy
    kind: str
    cluster: object  # Cluster or None
    per_replica_batch: int
    global_batch: int
    learning_rate: float  # after scaling
    lr_scaling: str
    mixed_precision: bool
    backup_every: int = None  # BackupAndRestore every N steps (None: every epoch)
    output_dir: pathlib.Path = None  # the shared output folder and this worker's (see
    local_dir: pathlib.Path = None  # write_dir)

    @classmethod
    def create(cls, *, strategy="auto", batch_size, learning_rate, global_batch_size=None,
               lr_scaling="linear", mixed_precision=False, tf_config=None,
               cluster_timeout=cluster.CLUSTER_TIMEOUT):
        """Check everything, then create the strategy (which waits for a cluster's peers).

        Args:
            strategy: a :data:`~horq_keras.training.cluster.STRATEGIES` value.
            batch_size: the recipe's batch, per replica.
            learning_rate: the recipe's learning rate, tuned for ``batch_size``.
            global_batch_size: fix the global batch instead (divisible by the replicas).
            lr_scaling: a :data:`~horq_keras.training.cluster.LR_SCALING` rule.
            mixed_precision: train in ``mixed_float16``
                (:mod:`horq_keras.training.mixed_precision`).
            tf_config: the ``TF_CONFIG`` text (default: the environment variable).
            cluster_timeout: seconds to wait for the other tasks of a multi-worker
                cluster (:func:`~horq_keras.training.cluster.wait_for_cluster`).
        """
        tasks = cluster.parse_tf_config(os.environ.get("TF_CONFIG") if tf_config is None
                                        else tf_config)
        # Listing logical devices starts TensorFlow's runtime, which must not run before a
        # multi-worker strategy configures its collective ops.
        mirror = 0 if tasks is not None else len(mirrored_devices() or ())
        num_gpus = len(tf.config.list_physical_devices("GPU"))  # does not start the runtime
        kind = cluster.resolve_strategy(strategy, tasks, mirror, num_gpus)
        replicas = cluster.count_replicas(kind, tasks, mirror, num_gpus)
        per_replica, global_batch = cluster.split_batch(batch_size, replicas, global_batch_size)
        scaled = cluster.scale_learning_rate(learning_rate, lr_scaling, global_batch, batch_size)
        set_mixed_precision(mixed_precision)
        if kind == "multi-worker":
            cluster.wait_for_cluster(tasks, cluster_timeout)
        made = _make_strategy(kind)
        if made.num_replicas_in_sync != replicas:
            raise cluster.DistributeError(f"{kind} strategy started with "
                                          f"{made.num_replicas_in_sync} replicas, expected "
                                          f"{replicas}")
        return cls(strategy=made, kind=kind, cluster=tasks if kind == "multi-worker" else None,
                   per_replica_batch=per_replica, global_batch=global_batch,
                   learning_rate=scaled, lr_scaling=lr_scaling,
                   mixed_precision=mixed_precision)

    @classmethod
    def from_args(cls, args, recipe):
        """:meth:`create` from the options of :func:`~horq_keras.training.cluster.add_arguments`
        and the recipe's batch (per replica), learning rate and scaling rule."""
        distribution = cls.create(
            strategy=args.strategy, batch_size=recipe.batch_size,
            learning_rate=recipe.learning_rate, global_batch_size=args.global_batch_size,
            lr_scaling=recipe.lr_scaling, mixed_precision=args.mixed_precision,
            cluster_timeout=args.cluster_timeout)
        distribution.backup_every = args.backup_every
        return distribution

    def scale(self, recipe):
        """``recipe`` with the global batch and its learning rates scaled by the same rule."""
        factor = self.learning_rate / recipe.learning_rate
        return dataclasses.replace(recipe, batch_size=self.global_batch,
                                   learning_rate=self.learning_rate,
                                   float_learning_rate=recipe.float_learning_rate * factor)

    def scope(self):
        """The strategy's scope: variables created in it are mirrored on every replica."""
        return self.strategy.scope()

    @property
    def replicas(self):
        return self.strategy.num_replicas_in_sync

    @property
    def is_chief(self):
        return self.cluster is None or self.cluster.is_chief

    def describe(self):
        """The start-up line: strategy, replicas, batch and learning rate."""
        where = (f", worker {self.cluster.rank} of {self.cluster.num_workers}"
                 f"{' (chief)' if self.is_chief else ''}" if self.cluster else "")
        return (f"strategy: {self.kind} ({_STRATEGY_NAMES[self.kind]}), replicas: "
                f"{self.replicas}{where}; global batch {self.global_batch} = "
                f"{self.per_replica_batch} per replica x {self.replicas}; learning rate "
                f"{self.learning_rate:g} ({self.lr_scaling} scaling)"
                f"{'; mixed_float16' if self.mixed_precision else ''}")

    def to_config(self):
        """The run-config entries of this distribution (``run_config.json``)."""
        return {"strategy": self.kind, "replicas": self.replicas,
                "per_replica_batch": self.per_replica_batch, "global_batch": self.global_batch,
                "lr_scaling": self.lr_scaling, "scaled_learning_rate": self.learning_rate,
                "mixed_precision": self.mixed_precision,
                "num_workers": self.cluster.num_workers if self.cluster else 1}

    def shard(self, dataset, source):
        """``dataset`` with the auto-shard policy of ``source``; returns it and the policy name."""
        policy = shard_policy(source)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = policy
        return dataset.with_options(options), policy.name

    def shard_datasets(self, datasets, source):
        """Every dataset of ``datasets`` with ``source``'s auto-shard policy (logged)."""
        sharded = [self.shard(dataset, source)[0] for dataset in datasets]
        print(f"auto-shard policy: {shard_policy(source).name} ({source})")
        return tuple(sharded)

    @contextlib.contextmanager
    def write_dir(self, output_dir):
        """Where this worker writes: ``output_dir`` on the chief, else a temporary directory.

        The temporary directory (a sibling of ``output_dir``'s files on a shared file
        system would clash between workers) is removed when the block ends, even on error.
        """
        self.output_dir = self.local_dir = pathlib.Path(output_dir)
        if self.is_chief:
            yield self.local_dir
            return
        self.local_dir = pathlib.Path(
            tempfile.mkdtemp(prefix=f"horq-keras-worker{self.cluster.rank}-"))
        try:
            yield self.local_dir
        finally:
            shutil.rmtree(self.local_dir, ignore_errors=True)

    def backup_callback(self, stage_dir):
        """``BackupAndRestore`` of a training stage: every epoch, or every
        :attr:`backup_every` batches.

        The chief writes the backup into ``stage_dir/backup`` and every worker restores from
        the chief's (TensorFlow has the others write theirs aside and delete it), so the
        other workers point at the same folder of the shared output folder, which must be
        on storage every worker reads (an NFS path, a bucket).
        """
        stage_dir = pathlib.Path(stage_dir)
        if self.local_dir is not None and self.local_dir != self.output_dir:
            stage_dir = self.output_dir / stage_dir.relative_to(self.local_dir)
        return tf.keras.callbacks.BackupAndRestore(str(stage_dir / "backup"),
                                                   save_freq=self.backup_every or "epoch")



