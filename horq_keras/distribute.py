"""Scale-out training with ``tf.distribute``: strategy, cluster, batch, sharding, outputs.

One :class:`Distribution` says how a ``horq-keras train`` run is spread:

- the strategy (``--strategy``): ``one`` device, ``mirrored`` over the GPUs of this
  machine (``tf.distribute.MirroredStrategy``), or ``multi-worker`` over the machines named
  by ``TF_CONFIG`` (``tf.distribute.MultiWorkerMirroredStrategy``, synchronous all-reduce;
  larq's ``QuantizedVariable`` wraps its distributed variables). ``auto`` picks
  multi-worker when ``TF_CONFIG`` names a cluster, mirrored when more than one GPU is
  visible, else one device;
- the global batch: the recipe's batch is per replica, so global = per-replica × replicas,
  unless ``--global-batch-size`` fixes the global batch (it must divide by the replicas);
- the learning rate: scaled by ``global batch / recipe batch`` (``linear``, Goyal et al.
  2017, "Accurate, large minibatch SGD"), its square root (``sqrt``) or not at all
  (``none``);
- the auto-shard policy of each data source: ``FILE`` for file-based sources (TFDS,
  TFRecords: each worker reads its own files), ``DATA`` for in-memory arrays and image
  folders (MNIST, IDX, ``folder:``; each worker keeps every n-th batch);
- where a worker writes: the chief writes the results into the output directory; every
  other worker writes into a temporary directory of its own, removed at the end.

Errors in any of these are :class:`DistributeError`: one line, exit code 2 on the command
line. Create the :class:`Distribution` before any other TensorFlow work: collective ops
(multi-worker) and logical devices can only be configured at program start.
"""

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import pathlib
import shutil
import tempfile

import tensorflow as tf

from horq_keras.argtypes import int_at_least
from horq_keras.mixed_precision import set_mixed_precision

__all__ = [
    "LR_SCALING",
    "SHARD_POLICIES",
    "STRATEGIES",
    "Cluster",
    "DistributeError",
    "Distribution",
    "add_arguments",
    "count_replicas",
    "mirrored_devices",
    "parse_tf_config",
    "resolve_strategy",
    "scale_learning_rate",
    "shard_policy",
    "split_batch",
    "weights_fingerprint",
]

#: ``--strategy`` values.
STRATEGIES = ("auto", "one", "mirrored", "multi-worker")

#: Learning-rate scaling rules: the factor as a function of ``global batch / recipe batch``.
LR_SCALING = {
    "linear": lambda ratio: ratio,
    "sqrt": math.sqrt,
    "none": lambda ratio: 1.0,
}

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

# Task types of a synchronous cluster; "chief" is optional (else worker 0 is the chief).
_TRAINING_TASKS = ("chief", "worker")


class DistributeError(ValueError):
    """A bad ``--strategy``, ``TF_CONFIG`` or batch for this machine (exit code 2)."""


@dataclasses.dataclass(frozen=True)
class Cluster:
    """The training tasks of ``TF_CONFIG``: their addresses, and which one this process is."""

    addresses: tuple  # the chief first (if the cluster has one), then the workers by index
    task_type: str
    task_index: int
    has_chief: bool = False

    @property
    def num_workers(self):
        return len(self.addresses)

    @property
    def rank(self):
        """This task's position in :attr:`addresses`; 0 is the chief."""
        if self.task_type == "chief":
            return 0
        return self.task_index + int(self.has_chief)

    @property
    def is_chief(self):
        return self.rank == 0


def _config_error(message):
    return DistributeError(f"TF_CONFIG: {message}")


def parse_tf_config(text):
    """The :class:`Cluster` of a ``TF_CONFIG`` JSON string, or ``None`` if unset/empty.

    Accepts ``{"cluster": {"worker": [...], "chief": [one]?}, "task": {"type", "index"}}``
    (the format of ``tf.distribute.cluster_resolver.TFConfigClusterResolver``); rejects
    malformed JSON, a missing cluster or task, parameter servers, addresses that are not
    ``host:port``, and a task index out of range.
    """
    if text is None or not text.strip():
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise _config_error(f"not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise _config_error(f"must be a JSON object; got {type(config).__name__}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise _config_error('missing "cluster" (e.g. {"worker": ["host1:12345", "host2:12345"]})')
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise _config_error('missing "task" with "type" and "index" (e.g. {"type": "worker", '
                            '"index": 0})')
    unsupported = sorted(set(cluster) - set(_TRAINING_TASKS) - {"evaluator"})
    if unsupported:
        raise _config_error(f"task types {unsupported} are not supported; synchronous "
                            f"training uses {list(_TRAINING_TASKS)}")
    for kind in _TRAINING_TASKS:
        addresses = cluster.get(kind, [])
        if not isinstance(addresses, list) or not all(_is_address(a) for a in addresses):
            raise _config_error(f'cluster "{kind}" must be a list of "host:port" strings; '
                                f"got {addresses!r}")
    chiefs, workers = cluster.get("chief", []), cluster.get("worker", [])
    if len(chiefs) > 1:
        raise _config_error(f'at most one "chief"; got {len(chiefs)}')
    if not chiefs and not workers:
        raise _config_error('the cluster names no "worker" or "chief" address')
    task_type, index = task["type"], task["index"]
    if task_type not in _TRAINING_TASKS:
        raise _config_error(f"task type {task_type!r} cannot train; allowed: "
                            f"{list(_TRAINING_TASKS)}")
    size = len(cluster.get(task_type, []))
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
        raise _config_error(f"task index {index!r} is out of range for the {size} "
                            f'"{task_type}" address(es); allowed: 0..{size - 1}'
                            if size else f'task type "{task_type}" has no address in the cluster')
    return Cluster(tuple(chiefs) + tuple(workers), task_type, index, has_chief=bool(chiefs))


def _is_address(value):
    host, _, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    return bool(host) and port.isdigit()


def resolve_strategy(name, cluster, mirror_devices):
    """The strategy to run (``one``, ``mirrored`` or ``multi-worker``) for ``--strategy name``.

    ``mirror_devices`` is the number of devices a mirrored run would use on this machine
    (:func:`mirrored_devices`). Raises :class:`DistributeError` when this machine cannot
    run the strategy: ``mirrored`` with fewer than two devices, ``multi-worker`` without a
    ``TF_CONFIG`` cluster.
    """
    if name not in STRATEGIES:
        raise DistributeError(f"--strategy must be one of {list(STRATEGIES)}; got {name!r}")
    if name == "auto":
        if cluster is not None:
            return "multi-worker"
        return "mirrored" if mirror_devices > 1 else "one"
    if name == "mirrored" and mirror_devices < 2:
        raise DistributeError(f"--strategy mirrored needs at least 2 GPUs; this machine has "
                              f"{_gpu_count()}. Use --strategy one or auto")
    if name == "multi-worker" and cluster is None:
        raise DistributeError("--strategy multi-worker needs TF_CONFIG naming the cluster "
                              "and this task (see README, 'Training on a cluster')")
    return name


def count_replicas(kind, cluster, mirror_devices):
    """Replicas of a ``kind`` run, known before its strategy starts (and waits for peers).

    Multi-worker: one replica per local GPU (or the CPU) on each of the cluster's workers.
    """
    if kind == "multi-worker":
        return cluster.num_workers * max(1, _gpu_count())
    return mirror_devices if kind == "mirrored" else 1


def _gpu_count():
    return len(tf.config.list_physical_devices("GPU"))  # does not start the runtime


def split_batch(per_replica, replicas, global_batch=None):
    """``(per-replica batch, global batch)``: global = per-replica × replicas.

    With ``global_batch`` given, it is split evenly over the replicas instead and must
    divide by them.
    """
    if global_batch is None:
        return per_replica, per_replica * replicas
    if global_batch % replicas:
        raise DistributeError(f"--global-batch-size {global_batch} is not divisible by the "
                              f"{replicas} replicas; use a multiple of {replicas}")
    return global_batch // replicas, global_batch


def scale_learning_rate(learning_rate, rule, global_batch, recipe_batch):
    """``learning_rate`` for ``global_batch`` by ``rule`` (:data:`LR_SCALING`).

    ``recipe_batch`` is the batch the recipe's learning rate was tuned for; the factor is
    ``global_batch / recipe_batch`` (linear), its square root (sqrt) or 1 (none).
    """
    if rule not in LR_SCALING:
        raise DistributeError(f"--lr-scaling must be one of {list(LR_SCALING)}; got {rule!r}")
    return learning_rate * LR_SCALING[rule](global_batch / recipe_batch)


def shard_policy(source):
    """The ``tf.data`` auto-shard policy for a data source kind (``mnist``, ``tfds``, ...)."""
    kind = source.split(":", 1)[0]
    if kind not in SHARD_POLICIES:
        raise DistributeError(f"no auto-shard policy for data source {kind!r}; known: "
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

    @classmethod
    def create(cls, *, strategy="auto", batch_size, learning_rate, global_batch_size=None,
               lr_scaling="linear", mixed_precision=False, tf_config=None):
        """Check everything, then create the strategy (which waits for a cluster's peers).

        Args:
            strategy: a :data:`STRATEGIES` value.
            batch_size: the recipe's batch, per replica.
            learning_rate: the recipe's learning rate, tuned for ``batch_size``.
            global_batch_size: fix the global batch instead (divisible by the replicas).
            lr_scaling: a :data:`LR_SCALING` rule.
            mixed_precision: train in ``mixed_float16`` (:mod:`horq_keras.mixed_precision`).
            tf_config: the ``TF_CONFIG`` text (default: the environment variable).
        """
        cluster = parse_tf_config(os.environ.get("TF_CONFIG") if tf_config is None
                                  else tf_config)
        # Listing logical devices starts TensorFlow's runtime, which must not run before a
        # multi-worker strategy configures its collective ops.
        mirror = 0 if cluster is not None else len(mirrored_devices() or ())
        kind = resolve_strategy(strategy, cluster, mirror)
        replicas = count_replicas(kind, cluster, mirror)
        per_replica, global_batch = split_batch(batch_size, replicas, global_batch_size)
        scaled = scale_learning_rate(learning_rate, lr_scaling, global_batch, batch_size)
        set_mixed_precision(mixed_precision)
        made = _make_strategy(kind)
        if made.num_replicas_in_sync != replicas:
            raise DistributeError(f"{kind} strategy started with {made.num_replicas_in_sync} "
                                  f"replicas, expected {replicas}")
        return cls(strategy=made, kind=kind, cluster=cluster if kind == "multi-worker" else None,
                   per_replica_batch=per_replica, global_batch=global_batch,
                   learning_rate=scaled, lr_scaling=lr_scaling,
                   mixed_precision=mixed_precision)

    @classmethod
    def from_args(cls, args, *, batch_size, learning_rate):
        """:meth:`create` from the options of :func:`add_arguments`."""
        return cls.create(strategy=args.strategy, batch_size=batch_size,
                          learning_rate=learning_rate, global_batch_size=args.global_batch_size,
                          lr_scaling=args.lr_scaling, mixed_precision=args.mixed_precision)

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

    @contextlib.contextmanager
    def write_dir(self, output_dir):
        """Where this worker writes: ``output_dir`` on the chief, else a temporary directory.

        The temporary directory (a sibling of ``output_dir``'s files on a shared file
        system would clash between workers) is removed when the block ends, even on error.
        """
        if self.is_chief:
            yield pathlib.Path(output_dir)
            return
        temporary = pathlib.Path(tempfile.mkdtemp(prefix=f"horq-keras-worker{self.cluster.rank}-"))
        try:
            yield temporary
        finally:
            shutil.rmtree(temporary, ignore_errors=True)

    def backup_callback(self, backup_dir, every_steps=None):
        """``BackupAndRestore`` at the end of every epoch, or every ``every_steps`` batches.

        In multi-worker runs the chief writes the backup and every worker restores from it,
        so ``backup_dir`` must be on storage all workers read (the same path on every
        machine: a shared file system or a bucket).
        """
        return tf.keras.callbacks.BackupAndRestore(str(backup_dir),
                                                   save_freq=every_steps or "epoch")



def add_arguments(parser):
    """Add the scale-out options of ``horq-keras train`` to ``parser``."""
    group = parser.add_argument_group(
        "scale-out", "tf.distribute: several GPUs (mirrored) or machines (multi-worker, "
                     "from TF_CONFIG); see README 'Training on a cluster'")
    group.add_argument("--strategy", choices=STRATEGIES, default="auto",
                       help="auto: multi-worker when TF_CONFIG names a cluster, mirrored "
                            "when more than one GPU is visible, else one device "
                            "(default: %(default)s)")
    group.add_argument("--global-batch-size", type=int_at_least(1), default=None, metavar="N",
                       help="fix the global batch (divisible by the replicas) instead of "
                            "--batch-size per replica x replicas")
    group.add_argument("--lr-scaling", choices=tuple(LR_SCALING), default="linear",
                       help="learning rate x (global batch / --batch-size), its square root, "
                            "or unchanged (default: %(default)s)")
    group.add_argument("--backup-every", type=int_at_least(1), default=None, metavar="STEPS",
                       help="back up the training state every STEPS batches, so that a "
                            "restarted run resumes mid-epoch (default: at the end of every "
                            "epoch)")
    group.add_argument("--mixed-precision", action="store_true",
                       help="train in Keras' mixed_float16 (for GPUs); the saved model and "
                            "the .tflite are float32")
