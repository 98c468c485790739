"""Shared timing of the benchmark scripts: interleaved repeats and the machine's load.

Interleaving (every candidate once per round, for ``repeats`` rounds) gives all
candidates the same machine state (clock, cache, other processes), so the ratios of
one run are fair even on a shared machine; the 1-minute load average before and after
says how shared it was.
"""

import contextlib
import os
import time

__all__ = ["load_average", "time_interleaved"]


@contextlib.contextmanager
def load_average():
    """Yield a dict that holds the 1-minute, 5-minute and 15-minute load averages
    ``"before"`` the block and, once it ends, ``"after"`` it."""
    load = {"before": os.getloadavg()}
    yield load
    load["after"] = os.getloadavg()


def time_interleaved(calls, repeats, *, warmup=1):
    """Seconds of each call of ``calls`` (``{key: callable}``), interleaved.

    Every callable first runs ``warmup`` times untimed (allocation, XNNPACK set-up,
    graph tracing); then ``repeats`` rounds call each once in turn. Returns
    ``{key: [seconds of each round]}``.
    """
    for call in calls.values():
        for _ in range(warmup):
            call()
    samples = {key: [] for key in calls}
    for _ in range(repeats):
        for key, call in calls.items():
            start = time.perf_counter()
            call()
            samples[key].append(time.perf_counter() - start)
    return samples
