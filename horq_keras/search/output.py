"""What a search writes: the table (printed and ``frontier.md``), ``frontier.json`` and
``frontier.png`` in the output folder, each written atomically."""

import io
import json
import pathlib

from horq_keras.files import atomic_write_bytes, atomic_write_text

__all__ = ["plot", "table", "write"]


def _row(point, front, chosen):
    if point.get("accuracy") is None:
        return [point["label"], str(point["epochs"]), "failed", "", "", "", "", "",
                point.get("failed", "")[:80]]
    marks = ("front" if any(p is point for p in front) else "") + (
        ", chosen" if point is chosen else "")
    return [point["label"], str(point["epochs"]), f"{100 * point['accuracy']:.2f}",
            f"{point['instructions'] / 1e6:,.2f}", f"{100 * point['measured_share']:.0f} %",
            f"{point['ms']:.2f}", f"{point['size_mb']:.3f}",
            f"{point['binary_macs'] / 1e6:,.1f} / {point['float_macs'] / 1e6:,.1f}",
            ("verified" if point["verified"] else "parity failed") + (
                f"; {marks}" if marks else "")]


def table(history, front, chosen):
    """A Markdown table: every candidate at the last rung it reached, front members first."""
    last = {}
    for points in history:
        for point in points:
            last[point["key"]] = point
    final_keys = {p["key"] for p in history[-1]}
    ordered = sorted(last.values(), key=lambda p: (
        not any(f is p for f in front), p["key"] not in final_keys,
        p.get("instructions", float("inf"))))
    header = ["candidate", "epochs", "accuracy %", "M instructions", "counted",
              "est. ms (RPi 4B)", "MB", "binary / float MMACs", "model"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_row(p, front, chosen)) + " |" for p in ordered]
    return "\n".join(lines) + "\n"


def plot(history, front, chosen):
    """Accuracy against aarch64 instructions: every rung's points, the front as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 5))
    for points in history:
        done = [p for p in points if p.get("accuracy") is not None]
        axis.scatter([p["instructions"] / 1e6 for p in done], [100 * p["accuracy"] for p in done],
                     label=f"{points[0]['epochs']} epoch(s)" if points else None, alpha=0.6)
    axis.plot([p["instructions"] / 1e6 for p in front], [100 * p["accuracy"] for p in front],
              "k-", lw=1, label="front (last rung)")
    for point in front:
        axis.annotate(point["label"], (point["instructions"] / 1e6, 100 * point["accuracy"]),
                      fontsize=6, xytext=(3, 3), textcoords="offset points")
    if chosen is not None:
        axis.scatter([chosen["instructions"] / 1e6], [100 * chosen["accuracy"]], s=120,
                     facecolors="none", edgecolors="r", label="chosen")
    axis.set(xlabel="M aarch64 instructions per inference (emulated Cortex-A72)",
             ylabel="validation accuracy % (.tflite)", title="accuracy vs ARM cost")
    axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def write(folder, history, front, chosen, summary):
    """Print the table; write ``frontier.md``, ``frontier.json``, ``frontier.png``."""
    folder = pathlib.Path(folder)
    text = table(history, front, chosen)
    print(text)
    atomic_write_text(folder / "frontier.md", "# Accuracy vs ARM cost\n\n" + text)
    data = {**summary, "front": front, "chosen": chosen, "rungs_points": history}
    atomic_write_text(folder / "frontier.json", json.dumps(data, indent=1, default=str) + "\n")
    figure = plot(history, front, chosen)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    atomic_write_bytes(folder / "frontier.png", buffer.getvalue())
