"""Shared plumbing of the benchmark scripts: their common options and atomic result files.

Each benchmark ``benchmarks/<name>.py`` writes ``<output-dir>/<name>.md`` (provenance
header, then its tables), ``<name>.json`` (the same figures plus provenance, machine
readable) and ``<name>.png`` (its plot). Every file is written atomically
(:func:`horq_keras.files.atomic_open`), so a failed or interrupted run never
leaves a half-written result behind nor clobbers the previous one.
"""

import argparse
import json
import pathlib
import shlex
import sys

from _provenance import markdown_header, provenance

from horq_keras.files import atomic_open

__all__ = [
    "RESULTS_DIR",
    "base_parser",
    "command_line",
    "load_note",
    "markdown_table",
    "parse_smoke_args",
    "write_results",
]

#: Where committed results live: ``benchmarks/results/``.
RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"


def base_parser(description):
    """argparse parser with the options every benchmark has: ``--smoke``, ``--output-dir``."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke", action="store_true",
        help="tiny configuration that only checks the script runs end to end (seconds); "
             "its figures mean nothing",
    )
    parser.add_argument(
        "--output-dir", type=pathlib.Path, default=RESULTS_DIR,
        help=f"directory for <name>.md/.json/.png (default: {RESULTS_DIR})",
    )
    return parser


def parse_smoke_args(parser, argv, smoke_defaults):
    """Parse ``argv``; with ``--smoke``, ``smoke_defaults`` replace the defaults.

    Options given explicitly on the command line win over both.
    """
    args = parser.parse_args(argv)
    if args.smoke:
        parser.set_defaults(**smoke_defaults)
        args = parser.parse_args(argv)
    return args


def command_line(script, argv):
    """The shell command that reproduces a run: ``python benchmarks/<script> <argv>``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return shlex.join(["python", f"benchmarks/{script}", *map(str, argv)])


def write_results(output_dir, name, *, command, markdown, data, figure=None):
    """Write ``<name>.md`` (provenance header + ``markdown``), ``.json`` and ``.png``.

    Args:
        output_dir: destination directory (created if needed).
        name: file stem, the benchmark's name.
        command: the command line that produced the figures.
        markdown: body of the Markdown report (title and tables).
        data: JSON-serialisable figures; stored with ``command`` and provenance.
        figure: a matplotlib figure saved as PNG, or ``None``.

    Returns:
        The list of written paths.
    """
    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    info = provenance()
    title, _, body = markdown.partition("\n")
    paths = []

    md_path = output_dir / f"{name}.md"
    with atomic_open(md_path) as file:
        file.write(f"{title}\n\n{markdown_header(command, info)}{body.lstrip()}")
    paths.append(md_path)

    json_path = output_dir / f"{name}.json"
    with atomic_open(json_path) as file:
        json.dump({"command": command, "provenance": info, **data}, file, indent=2)
        file.write("\n")
    paths.append(json_path)

    if figure is not None:
        png_path = output_dir / f"{name}.png"
        with atomic_open(png_path, "wb") as file:
            figure.savefig(file, format="png", dpi=120, bbox_inches="tight")
        paths.append(png_path)
    return paths


def markdown_table(header, rows):
    """A GitHub Markdown table from a header row and rows of cells (converted with str)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def load_note(load):
    """A sentence stating the 1-minute load averages measured before and after timing."""
    before, after = load["before"][0], load["after"][0]
    return (f"1-minute load average of the machine: {before:.1f} before timing, {after:.1f} "
            f"after (other processes share the cores; the more load, the noisier the timings).")
