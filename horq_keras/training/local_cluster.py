"""A multi-worker cluster on this machine: one ``TF_CONFIG`` per worker on 127.0.0.1.

For tests and benchmarks that start real worker processes of ``horq-keras train
--strategy multi-worker`` without a network: the ports are free ones picked by the
operating system (bound together, then released just before the workers bind them).
"""

import contextlib
import json
import socket

__all__ = ["free_ports", "loopback_tf_configs"]


def free_ports(count):
    """``count`` distinct free TCP ports of 127.0.0.1."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def loopback_tf_configs(workers):
    """The ``TF_CONFIG`` JSON of each of ``workers`` workers (index order; 0 is the chief)."""
    addresses = [f"127.0.0.1:{port}" for port in free_ports(workers)]
    return [json.dumps({"cluster": {"worker": addresses},
                        "task": {"type": "worker", "index": index}})
            for index in range(workers)]
