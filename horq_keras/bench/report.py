"""Show a :func:`horq_keras.bench.timing.benchmark` result: text, JSON file, PNG plot.

Files are written atomically (:mod:`horq_keras.files`): a reader sees the old
file or the complete new one.
"""

import io
import json

from horq_keras.tflite.ops import is_binary_op
from horq_keras.files import atomic_write_bytes, atomic_write_text

__all__ = ["format_summary", "write_json", "write_plot"]


def _latency_line(label, entry):
    latency = entry["latency_ms"]

    def ms(key):
        return "n/a" if latency.get(key) is None else f"{latency[key]:.3f}"

    return (f"  {label:<9} min {ms('min')}  median {ms('median')}  max {ms('max')}  "
            f"mean {ms('mean')} ms  ({latency['count']} runs)  {entry['path']}")


def format_summary(result):
    """Human-readable lines: machine, runner, latencies, ratio, top operator types."""
    machine = result["machine"]
    where = " ".join(filter(None, (machine.get("board") or machine.get("android_device"),
                                   machine.get("cpu"), machine.get("machine"))))
    runner = result["runner"]
    system = " ".join(filter(None, (machine.get("system"), machine.get("release"))))
    lines = [
        f"target  {result['target']}: {machine.get('hostname', '?')} ({where or 'unknown machine'}), "
        f"{machine.get('cpus', '?')} CPUs" + (f", {system}" if system else ""),
        f"runner  {runner['kind']} ({runner.get('runtime') or runner.get('binary')}), "
        f"{result['settings']['threads']} thread(s)",
        _latency_line("model", result["model"]),
    ]
    ops = result["model"]["ops"]
    lines.append(f"  binary convolutions {ops['num_binary_convs']}/{ops['num_product_ops']} "
                 f"({ops['binary_conv_share']:.0%}); LCE ops {ops['num_binary_ops']}/{ops['num_ops']}")
    if result["baseline"] is not None:
        lines.append(_latency_line("baseline", result["baseline"]))
        if result["speedup_vs_baseline"] is not None:
            lines.append(f"  speed-up vs baseline: {result['speedup_vs_baseline']:.2f}x "
                         f"(ratio of {result['ratio_statistic']}s)")
    profile = result["model"].get("op_profile")
    if profile and profile["op_types"]:
        top = sorted(profile["op_types"], key=lambda row: -row["avg_ms"])[:6]
        lines.append("  time by operator type: " + ", ".join(
            f"{row['node_type']} {row['avg_ms']:.3f} ms" for row in top))
        if profile["binary_time_share"] is not None:
            lines.append(f"  time in LCE operators: {profile['binary_time_share']:.0%}")
    return "\n".join(lines)


def write_json(path, result):
    """Write ``result`` as indented JSON to ``path`` (atomically)."""
    atomic_write_text(path, json.dumps(result, indent=2, sort_keys=True) + "\n")


def write_plot(path, result):
    """Plot latencies (median or mean, min-to-max whiskers, log scale) and, when profiled, time per
    operator type of the model; save as PNG to ``path`` (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    entries = [("model", result["model"])]
    if result["baseline"] is not None:
        entries.append(("baseline", result["baseline"]))
    profile = result["model"].get("op_profile")
    panels = 2 if profile and profile["op_types"] else 1
    figure = Figure(figsize=(6.4 * panels, 3.2), layout="constrained")
    axes = figure.subplots(1, panels, squeeze=False)[0]

    statistic = ("median" if all(e["latency_ms"].get("median") is not None for _, e in entries)
                 else "mean")
    labels, centers, low, high = [], [], [], []
    for label, entry in entries:
        latency = entry["latency_ms"]
        center = latency[statistic]
        labels.append(label)
        centers.append(center)
        low.append(center - latency["min"])
        high.append(latency["max"] - center)
    axes[0].errorbar(centers, labels, xerr=[low, high], fmt="o", capsize=4, color="tab:blue")
    axes[0].set_xscale("log")  # one slow outlier must not flatten the medians
    axes[0].set_ylim(-0.5, len(labels) - 0.5)
    axes[0].invert_yaxis()
    axes[0].set_xlabel(f"latency, ms, log scale ({statistic}; whiskers: min to max)")
    title = f"{result['target']} · {result['machine'].get('machine', '')} · {result['runner']['kind']}"
    if result["speedup_vs_baseline"]:
        title += f" · {result['speedup_vs_baseline']:.2f}x vs baseline"
    axes[0].set_title(title, fontsize=9)

    if panels == 2:
        rows = sorted(profile["op_types"], key=lambda row: row["avg_ms"])
        colors = ["tab:orange" if is_binary_op(row["node_type"]) else "tab:blue" for row in rows]
        axes[1].barh([row["node_type"] for row in rows], [row["avg_ms"] for row in rows], color=colors)
        axes[1].set_xlabel("model time per run, ms (orange: LCE operators)")
        axes[1].set_title("operator types", fontsize=9)

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    atomic_write_bytes(path, buffer.getvalue())
