"""Where a benchmark's figures come from: command, date, machine and package versions.

Every results file written under ``benchmarks/results/`` starts with this header so a
reader can tell which code, machine and library versions produced the numbers::

    from _provenance import markdown_header, provenance   # from a script in benchmarks/

    info = provenance()                       # a JSON-ready dict
    text = markdown_header("python benchmarks/x.py --flag") + table
"""

import datetime
import importlib.metadata
import os
import platform
import subprocess

__all__ = ["PACKAGES", "markdown_header", "provenance"]

#: Distributions whose installed versions are recorded.
PACKAGES = (
    "horq-keras",
    "tensorflow",
    "tf-keras",
    "larq",
    "larq-compute-engine",
    "tensorflow-model-optimization",
    "numpy",
    "matplotlib",
)

_REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cpu_model():
    """The ``model name`` line of /proc/cpuinfo (or the platform's processor name)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git_commit():
    """``<commit>`` of the repository, with ``+dirty`` when the work tree has changes
    outside ``benchmarks/results/`` (the results of earlier runs are no code: a campaign
    that writes them one script after another still runs the committed code)."""
    def git(*args):
        return subprocess.run(
            ["git", "-C", _REPOSITORY, *args], capture_output=True, text=True, check=True,
            timeout=10,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", ".",
                         ":(exclude)benchmarks/results"))
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def provenance():
    """A JSON-ready description of this run: date, machine, Python, packages, commit."""
    return {
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_model": _cpu_model(),
            "logical_cores": os.cpu_count(),
            "platform": platform.platform(),
        },
        "python": platform.python_version(),
        "packages": {package: _version(package) for package in PACKAGES},
        "git_commit": _git_commit(),
    }


def markdown_header(command, info=None):
    """Markdown lines stating ``command`` and :func:`provenance` (or ``info``), then a blank line."""
    info = provenance() if info is None else info
    machine = info["machine"]
    packages = ", ".join(f"{name} {version}" for name, version in info["packages"].items())
    return "\n".join([
        f"- Command: `{command}`",
        f"- Date (UTC): {info['date_utc']}",
        (f"- Machine: {machine['cpu_model']}, {machine['logical_cores']} logical cores, "
         f"{machine['platform']}"),
        f"- Python {info['python']}; {packages}",
        f"- Commit: {info['git_commit']}",
        "",
        "",
    ])
