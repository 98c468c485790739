"""The cluster side of scale-out training, without TensorFlow: options, ``TF_CONFIG``,
strategy choice, replicas, global batch and learning-rate scaling.

- ``--strategy``: ``one`` device, ``mirrored`` over the GPUs of this machine,
  ``multi-worker`` over the machines named by ``TF_CONFIG``; ``auto`` picks multi-worker
  when ``TF_CONFIG`` names a cluster, mirrored when more than one GPU is visible, else one
  device (:func:`resolve_strategy`).
- The global batch: the recipe's batch is per replica, so global = per-replica ×
  replicas, unless ``--global-batch-size`` fixes the global batch, which must divide by
  the replicas (:func:`split_batch`).
- The learning rate is scaled by ``global batch / recipe batch`` (``linear``, Goyal et
  al. 2017, "Accurate, large minibatch SGD: training ImageNet in 1 hour", §2.1), by its
  square root (``sqrt``) or not at all (``none``) (:func:`scale_learning_rate`).

- Before a multi-worker strategy starts (TensorFlow then waits for every worker without
  a limit, deaf to SIGINT and SIGTERM), :func:`wait_for_cluster` holds this task's port
  (a port in use is an error) and waits, in Python, until every other task answers on
  its port, at most ``--cluster-timeout`` seconds; a task that does not is named.

Every error is a :class:`DistributeError` with a one-line message (exit code 2 on the
command line). :mod:`horq_keras.training.distribute` starts the strategy itself.
"""

import dataclasses
import json
import math
import socket
import time

from horq_keras.argtypes import int_at_least, positive_number

__all__ = [
    "CLUSTER_TIMEOUT",
    "LR_SCALING",
    "STRATEGIES",
    "Cluster",
    "DistributeError",
    "add_arguments",
    "count_replicas",
    "parse_tf_config",
    "resolve_strategy",
    "scale_learning_rate",
    "split_batch",
    "wait_for_cluster",
]

#: Seconds a multi-worker task waits for the other tasks of its cluster, by default.
CLUSTER_TIMEOUT = 600.0

#: ``--strategy`` values.
STRATEGIES = ("auto", "one", "mirrored", "multi-worker")

#: Learning-rate scaling rules: the factor as a function of ``global batch / recipe batch``.
LR_SCALING = {
    "linear": lambda ratio: ratio,
    "sqrt": math.sqrt,
    "none": lambda ratio: 1.0,
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

    def task_names(self):
        """``"chief 0"``, ``"worker 0"``, ... in the order of :attr:`addresses`."""
        return ["chief 0"] * self.has_chief + [
            f"worker {index}" for index in range(self.num_workers - self.has_chief)]


def _split_address(address):
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _answers(address):
    try:
        with socket.create_connection(_split_address(address), timeout=1.0):
            return True
    except OSError:
        return False


def wait_for_cluster(tasks, timeout, poll=0.5):
    """Wait until every other task of ``tasks`` (a :class:`Cluster`) accepts a TCP
    connection on its port, holding this task's port meanwhile so the others see it.

    Raises :class:`DistributeError` when this task's port is in use, or naming the
    tasks that did not answer within ``timeout`` seconds. Sleeps in Python between
    tries, so SIGINT and SIGTERM end the wait.
    """
    own = tasks.addresses[tasks.rank]
    names = tasks.task_names()
    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            held.bind(("", _split_address(own)[1]))
        except OSError as error:
            raise _config_error(f"this task's address {own} ({names[tasks.rank]}) is in use "
                                f"({error.strerror}); free the port or choose another") from None
        held.listen()
        waiting = {name: address for name, address in zip(names, tasks.addresses)
                   if address != own}
        deadline = time.monotonic() + timeout
        while True:
            waiting = {name: address for name, address in waiting.items()
                       if not _answers(address)}
            if not waiting:
                return
            if time.monotonic() >= deadline:
                missing = ", ".join(f"{name} ({address})" for name, address in waiting.items())
                raise DistributeError(f"--cluster-timeout: {missing} of TF_CONFIG did not start "
                                      f"within {timeout:g} s; start it, or wait longer with "
                                      f"--cluster-timeout")
            time.sleep(poll)


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


def resolve_strategy(name, cluster, mirror_devices, num_gpus=0):
    """The strategy to run (``one``, ``mirrored`` or ``multi-worker``) for ``--strategy name``.

    ``mirror_devices`` is the number of devices a mirrored run would use on this machine
    (:func:`~horq_keras.training.distribute.mirrored_devices`), ``num_gpus`` the GPUs
    it sees. Raises :class:`DistributeError` when this machine cannot
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
                              f"{num_gpus}. Use --strategy one or auto")
    if name == "multi-worker" and cluster is None:
        raise DistributeError("--strategy multi-worker needs TF_CONFIG naming the cluster "
                              "and this task (see README, 'Training on a cluster')")
    return name


def count_replicas(kind, cluster, mirror_devices, num_gpus):
    """Replicas of a ``kind`` run, known before its strategy starts (and waits for peers).

    Multi-worker: one replica per local GPU (``num_gpus``, or the CPU) on each of the
    cluster's workers; mirrored: ``mirror_devices``.
    """
    if kind == "multi-worker":
        return cluster.num_workers * max(1, num_gpus)
    return mirror_devices if kind == "mirrored" else 1


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
    group.add_argument("--backup-every", type=int_at_least(1), default=None, metavar="STEPS",
                       help="back up the training state every STEPS batches, so that a "
                            "restarted run resumes mid-epoch (default: at the end of every "
                            "epoch)")
    group.add_argument("--cluster-timeout", type=positive_number, default=CLUSTER_TIMEOUT,
                       metavar="SECONDS",
                       help="multi-worker: how long to wait for every worker of TF_CONFIG to "
                            "start before giving up (default: %(default)g)")
    group.add_argument("--mixed-precision", action="store_true",
                       help="train in Keras' mixed_float16 (for GPUs); the saved model and "
                            "the .tflite are float32")
