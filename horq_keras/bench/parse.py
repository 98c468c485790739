"""Read what the runners print: the Python runner's JSON and ``lce_benchmark_model``'s log.

``lce_benchmark_model`` is TFLite's ``benchmark_model`` with LCE's operators registered
(``larq_compute_engine/tflite/benchmark/lce_benchmark_main.cc`` in larq/compute-engine),
so it prints TFLite's format (``tensorflow/lite/tools/benchmark``):

- per measuring phase (warm-up, then the regular runs) a statistics line of
  ``Stat::OutputToStream`` (``tsl/util/stats_calculator.h``), times in microseconds::

      count=50 first=2990275 curr=2913402 min=2727568 max=3189954 avg=2.95034e+06 std=109798

  (``count=1 curr=...`` when all runs took the same time; newer builds append
  ``p5=... median=... p95=...``);
- the summary of ``BenchmarkLoggingListener::OnBenchmarkEnd`` (``benchmark_model.cc``)::

      Inference timings in us: Init: 17187, First inference: 3512391, Warmup (avg): 3.51239e+06, Inference (avg): 2.95034e+06

- with ``--enable_op_profiling=true``, after the header ``Operator-wise Profiling Info
  for Regular Benchmark Runs:`` (``profiling_listener.cc``), the tables ``Run Order``
  (one row per operator: ``[node type] [start] [first] [avg ms] [%] [cdf%] [mem KB]
  [times called] [Name]``; older builds have the ``[start]`` column) and ``Summary by
  node type`` (``[Node type] [count] [avg ms] [avg %] [cdf %] [mem KB] [times called]``),
  as in the example of ``tensorflow/lite/tools/benchmark/README.md``.

Log lines may carry a prefix such as ``INFO: ``.
"""

import json
import math
import re
import statistics

from horq_keras.tflite.ops import is_binary_op
from horq_keras.bench.runner import MARKER
from horq_keras.bench.targets import BenchError

__all__ = [
    "latency_stats",
    "parse_runner_output",
    "parse_benchmark_model_output",
    "parse_profile",
    "error_lines",
]

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|nan|inf)"
_SUMMARY = re.compile(
    rf"Inference timings in us: Init: ({_NUMBER}), First inference: ({_NUMBER}), "
    rf"Warmup \(avg\): ({_NUMBER}), Inference \(avg\): ({_NUMBER})"
)
_STATS = re.compile(r"(?:^|[\s:])count=(\d+)\b(.*)$")
_KEY_VALUE = re.compile(rf"(\w+)=({_NUMBER})")
_PROFILE_HEADER = "Operator-wise Profiling Info for Regular Benchmark Runs"
_COLUMNS = re.compile(r"\[([^\]]+)\]")
_FIELD_SEPARATOR = re.compile(r"\s*\t\s*|\s{2,}")


def _ms(microseconds):
    return None if microseconds is None or math.isnan(microseconds) else microseconds / 1e3


def latency_stats(samples_us):
    """Latency statistics in milliseconds of a list of times in microseconds."""
    samples = [value / 1e3 for value in samples_us]
    return {
        "count": len(samples),
        "min": min(samples),
        "median": statistics.median(samples),
        "max": max(samples),
        "mean": statistics.fmean(samples),
        "std": statistics.pstdev(samples),
    }


def error_lines(text, limit=5):
    """The last ``limit`` lines of ``text`` that report an error (for messages)."""
    lines = [line.strip() for line in text.splitlines()
             if re.search(r"error|failed|cannot|unable|not found|unresolved", line, re.I)]
    return " | ".join(lines[-limit:])


def parse_runner_output(stdout):
    """The JSON object of the runner's ``HORQ_BENCH_RESULT`` line.

    Raises:
        BenchError: when there is no such line or it is not JSON.
    """
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER + " "):
            try:
                return json.loads(line[len(MARKER) + 1:])
            except json.JSONDecodeError as error:
                raise BenchError(f"the runner printed a broken result line ({error}).") from None
    raise BenchError("the runner printed no result line; output: " + stdout.strip()[-500:])


def _stats_line(line):
    if "Timings (microseconds)" in line or "Memory (bytes)" in line:  # profiler summaries
        return None
    match = _STATS.search(line)
    if not match:
        return None
    values = {key: float(value) for key, value in _KEY_VALUE.findall(match.group(2))}
    values["count"] = int(match.group(1))
    return values


def _table(lines, start, title):
    """Rows (dicts keyed by column name) of the table titled ``title`` after ``start``."""
    index = next((i for i in range(start, len(lines)) if title in lines[i]), None)
    if index is None or index + 1 >= len(lines):
        return []
    columns = _COLUMNS.findall(lines[index + 1])
    rows = []
    for line in lines[index + 2:]:
        text = re.sub(r"^\s*(?:INFO:\s*)?", "", line).rstrip()
        if not text or text.startswith("="):
            break
        fields = _FIELD_SEPARATOR.split(text.strip())
        if len(fields) < len(columns):
            break
        fields[len(columns) - 1:] = [" ".join(fields[len(columns) - 1:])]
        rows.append(dict(zip(columns, fields, strict=True)))
    return rows


def _number(text):
    return float(text.rstrip("%"))


def parse_profile(text):
    """Per-operator times of the regular runs from ``--enable_op_profiling=true`` output.

    Returns ``None`` when the output has no operator profile, else a dict:
    ``operators`` (run order: ``node_type``, ``name``, ``avg_ms``, ``percent``),
    ``op_types`` (``node_type``, ``count``, ``avg_ms``, ``percent``), and
    ``binary_time_share``, the share of operator time spent in LCE operators.
    """
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _PROFILE_HEADER in line), None)
    if start is None:
        return None
    operators = [
        {"node_type": row["node type"], "name": row["Name"], "avg_ms": _number(row["avg ms"]),
         "percent": _number(row["%"])}
        for row in _table(lines, start, "Run Order")
    ]
    op_types = [
        {"node_type": row["Node type"], "count": int(row["count"]),
         "avg_ms": _number(row["avg ms"]), "percent": _number(row["avg %"])}
        for row in _table(lines, start, "Summary by node type")
    ]
    total = sum(row["avg_ms"] for row in op_types)
    binary = sum(row["avg_ms"] for row in op_types if is_binary_op(row["node_type"]))
    return {
        "operators": operators,
        "op_types": op_types,
        "binary_time_share": binary / total if total > 0 else None,
    }


def parse_benchmark_model_output(text):
    """Latency (ms), init and first-inference times and operator profile of a run log.

    Returns a dict with ``latency_ms`` (``count``, ``min``, ``max``, ``mean``, ``std``,
    and ``median`` — ``None`` when the build does not print percentiles), ``init_ms``,
    ``first_inference_ms``, ``warmup_mean_ms`` and ``op_profile`` (see
    :func:`parse_profile`).

    Raises:
        BenchError: when the log has no ``Inference timings`` summary (the tool failed),
            quoting its error lines.
    """
    lines = text.splitlines()
    summary_index = next((i for i, line in enumerate(lines) if _SUMMARY.search(line)), None)
    if summary_index is None:
        raise BenchError(
            "lce_benchmark_model did not finish: "
            + (error_lines(text) or text.strip()[-500:] or "no output")
        )
    init_us, first_us, warmup_us, mean_us = (
        float(value) for value in _SUMMARY.search(lines[summary_index]).groups()
    )
    regular = None
    for line in lines[:summary_index]:
        regular = _stats_line(line) or regular
    if regular is None or regular["count"] == 0:
        raise BenchError("lce_benchmark_model printed no statistics of its regular runs.")
    # "count=N curr=X(all same)": every run took X.
    low = regular.get("min", regular.get("curr"))
    high = regular.get("max", regular.get("curr"))
    return {
        "latency_ms": {
            "count": regular["count"],
            "min": _ms(low),
            "median": _ms(regular.get("median")),
            "max": _ms(high),
            "mean": _ms(mean_us),
            "std": _ms(regular.get("std", 0.0)),
        },
        "init_ms": _ms(init_us),
        "first_inference_ms": _ms(first_us),
        "warmup_mean_ms": _ms(warmup_us),
        "op_profile": parse_profile(text),
    }
