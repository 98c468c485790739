"""``benchmark()``: time a converted model (and a float baseline) on a target.

Two runners measure:

- the Python runner (:mod:`horq_keras.bench.runner`, copied to the target), on LCE's
  interpreter with its fast-path flags; it times the model and the baseline in
  alternating rounds of one process, and keeps every run's time (min/median/max);
- LCE's ``lce_benchmark_model`` (``--benchmark-binary``), TFLite's benchmark tool with
  LCE's kernels — the one that runs LCE's optimized aarch64 kernels on a Raspberry Pi or
  a phone. It runs the model and then the baseline, prints min/mean/max (the median
  only in newer builds) and, with operator profiling, per-operator times.

The ratio to the baseline is ``baseline latency / model latency`` (> 1: the model is
faster), on medians when both have one, else on means.
"""

import dataclasses
import datetime
import hashlib
import importlib.metadata
import os

from horq_keras.bench import parse
from horq_keras.tflite.ops import summarize_ops
from horq_keras.bench.runner import MARKER
from horq_keras.bench.registry import make_target
from horq_keras.bench.targets import BenchError, TargetOptions, parse_target

__all__ = ["Settings", "benchmark", "RUNNER_PATH", "BINARY_NAME"]

#: The Python runner that is copied to the target.
RUNNER_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runner.py")

#: Name of LCE's benchmark tool (release assets: lce_benchmark_model_aarch64,
#: lce_benchmark_model_aarch32, lce_benchmark_model_android_arm64).
BINARY_NAME = "lce_benchmark_model"

# Exit statuses of a POSIX shell for a program that is missing or not executable.
_NOT_FOUND = (126, 127)


@dataclasses.dataclass(frozen=True)
class Settings:
    """What to measure, and with which of LCE's interpreter flags.

    Attributes:
        threads: interpreter threads, >= 1.
        runs: timed inferences per model, >= 1.
        warmup: untimed inferences per model before timing, >= 1 (the first one is
            reported as the first-inference time).
        use_xnnpack: TFLite's XNNPACK delegate for float operators.
        use_indirect_bgemm: LCE's indirect BGEMM kernels for ``LceBconv2d``.
        use_reference_bconv: LCE's slow reference ``LceBconv2d`` (for checking).
        op_profiling: per-operator times (``lce_benchmark_model`` only).
    """

    threads: int = 1
    runs: int = 50
    warmup: int = 5
    use_xnnpack: bool = True
    use_indirect_bgemm: bool = True
    use_reference_bconv: bool = False
    op_profiling: bool = True

    def __post_init__(self):
        for name, minimum in (("threads", 1), ("runs", 1), ("warmup", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")


def _model_file(path, argument):
    """Bytes-derived facts of a model file; ValueError naming ``argument`` if unusable."""
    if not os.path.isfile(path):
        what = "is a directory" if os.path.isdir(path) else "does not exist"
        raise ValueError(f"`{argument}` must be a .tflite file; {path!r} {what}.")
    with open(path, "rb") as file:
        flatbuffer = file.read()
    try:
        ops = summarize_ops(flatbuffer)
    except ValueError as error:
        raise ValueError(f"`{argument}` {path!r}: {error}.") from None
    return {
        "path": os.path.abspath(path),
        "size_bytes": len(flatbuffer),
        "sha256": hashlib.sha256(flatbuffer).hexdigest(),
        "ops": ops,
    }


def _not_found(result, what, fix):
    if result.returncode in _NOT_FOUND:
        raise BenchError(f"{what} is missing or not executable on the target "
                         f"(exit status {result.returncode}): {fix}")


def _measure_with_runner(target, remote, settings):
    """Run the Python runner once on all models; ``{name: measurement}``."""
    names = [name for name in remote if name != "runner.py"]
    argv = [
        target.python, remote["runner.py"], *(remote[name] for name in names),
        "--threads", str(settings.threads), "--runs", str(settings.runs),
        "--warmup", str(settings.warmup),
        "--xnnpack" if settings.use_xnnpack else "--no-xnnpack",
        "--indirect-bgemm" if settings.use_indirect_bgemm else "--no-indirect-bgemm",
        "--reference-bconv" if settings.use_reference_bconv else "--no-reference-bconv",
    ]
    result = target.run(argv, "running the Python runner")
    _not_found(result, f"Python interpreter {target.python!r}",
               "install Python 3 with NumPy there, or set --remote-python.")
    if MARKER not in result.stdout:
        raise BenchError(
            f"the runner on {target.spec} failed (exit status {result.returncode}): "
            + (parse.error_lines(result.stderr) or result.stderr.strip()[-500:] or "no output")
        )
    output = parse.parse_runner_output(result.stdout)
    if "error" in output:
        which = next((name for name in names if remote[name] == output["model"]), None)
        logged = parse.error_lines(result.stderr)
        raise BenchError(
            f"the runner on {target.spec} cannot run "
            + (f"the {which} model ({output['model']})" if which else "the models")
            + f": {output['error']}" + (f" [log: {logged}]" if logged else "")
        )
    measured = {}
    for name, entry in zip(names, output["results"], strict=True):
        measured[name] = {
            "latency_ms": parse.latency_stats(entry["latency_us"]),
            "first_inference_ms": entry["first_us"] / 1e3,
            "op_profile": None,
        }
    return {"kind": "python", "python": target.python, "runtime": output["runtime"]}, measured


def _binary_flags(settings):
    def flag(value):
        return "true" if value else "false"

    return [
        f"--num_threads={settings.threads}",
        f"--num_runs={settings.runs}", "--min_secs=0",
        f"--warmup_runs={settings.warmup}", "--warmup_min_secs=0",
        f"--use_xnnpack={flag(settings.use_xnnpack)}",
        f"--use_indirect_bgemm={flag(settings.use_indirect_bgemm)}",
        f"--use_reference_bconv={flag(settings.use_reference_bconv)}",
        f"--enable_op_profiling={flag(settings.op_profiling)}",
    ]


def _measure_with_binary(target, binary, remote, settings):
    """Run ``lce_benchmark_model`` once per model; ``{name: measurement}``."""
    measured = {}
    for name, path in remote.items():
        result = target.run([binary, f"--graph={path}", *_binary_flags(settings)],
                            f"running {BINARY_NAME} on the {name}")
        _not_found(result, f"benchmark binary {binary!r}",
                   f"get LCE's {BINARY_NAME} for this board (docs/raspberry_pi.md) and pass "
                   "its path with --benchmark-binary.")
        output = result.stdout + "\n" + result.stderr
        try:
            measured[name] = parse.parse_benchmark_model_output(output)
        except BenchError as error:
            raise BenchError(f"{BINARY_NAME} on {target.spec} failed on the {name} model "
                             f"(exit status {result.returncode}): {error}") from None
        if result.returncode != 0:
            raise BenchError(f"{BINARY_NAME} on {target.spec} exited with status "
                             f"{result.returncode} on the {name} model: {parse.error_lines(output)}")
    return {"kind": BINARY_NAME, "binary": binary}, measured


def _check_local_binary(spec, benchmark_binary):
    """Before connecting: the binary that is pushed (adb) or run (local) must exist here."""
    if spec.kind == "adb" and benchmark_binary is None:
        raise ValueError(
            f"`--benchmark-binary` is required for --target adb: the local path of LCE's "
            f"{BINARY_NAME}_android_arm64 (a release asset of larq/compute-engine)."
        )
    if spec.kind == "adb" and not os.path.isfile(benchmark_binary):
        raise ValueError(
            f"`--benchmark-binary` {benchmark_binary!r} does not exist here: download LCE's "
            f"{BINARY_NAME}_android_arm64 release asset and pass its path."
        )
    if spec.kind == "local" and benchmark_binary is not None and not (
        os.path.isfile(benchmark_binary) and os.access(benchmark_binary, os.X_OK)
    ):
        raise ValueError(
            f"`--benchmark-binary` {benchmark_binary!r} is missing or not executable."
        )


def _prepare_binary(target, benchmark_binary):
    """Path of the benchmark binary on the target (pushed there for adb)."""
    if target.spec.kind != "adb":
        return benchmark_binary
    path = target.push({BINARY_NAME: benchmark_binary})[BINARY_NAME]
    result = target.run(["chmod", "755", path], "making the benchmark binary executable")
    if result.returncode != 0:
        raise BenchError(f"cannot make {path} executable: {result.stderr.strip()}")
    return path


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _ratio(model, baseline):
    """``(baseline / model latency, statistic)``: medians when both exist, else means."""
    for statistic in ("median", "mean"):
        m, b = model["latency_ms"].get(statistic), baseline["latency_ms"].get(statistic)
        if m and b:
            return b / m, statistic
    return None, None


def benchmark(model, baseline=None, *, target="local", settings=None, options=None,
              benchmark_binary=None):
    """Time ``model`` (and ``baseline``) on ``target``; return a JSON-ready dict.

    Args:
        model: path of a converted ``.tflite`` model.
        baseline: optional path of a float ``.tflite`` model timed in the same session.
        target: ``--target`` string or :class:`~horq_keras.bench.targets.TargetSpec`.
        settings: :class:`Settings` (default ``Settings()``).
        options: :class:`~horq_keras.bench.targets.TargetOptions`.
        benchmark_binary: LCE's ``lce_benchmark_model``: a path on the ssh target, a
            local file that is pushed for adb, or a local path; ``None`` uses the Python
            runner (not available on adb).

    Raises:
        ValueError: for bad arguments (naming them).
        BenchError: when the target or runner fails (see :class:`BenchError`).
    """
    settings = settings or Settings()
    options = options or TargetOptions()
    spec = parse_target(target) if isinstance(target, str) else target
    files = {"model": _model_file(model, "model")}
    if baseline is not None:
        files["baseline"] = _model_file(baseline, "baseline")
    _check_local_binary(spec, benchmark_binary)
    started = datetime.datetime.now(datetime.UTC)
    with make_target(spec, options) as device:
        uploads = {f"{name}.tflite": info["path"] for name, info in files.items()}
        if benchmark_binary is None:
            uploads["runner.py"] = RUNNER_PATH
        remote = device.push(uploads)
        models = {name: remote[f"{name}.tflite"] for name in files}
        if benchmark_binary is None:
            runner, measured = _measure_with_runner(
                device, {**models, "runner.py": remote["runner.py"]}, settings)
        else:
            binary = _prepare_binary(device, benchmark_binary)
            runner, measured = _measure_with_binary(device, binary, models, settings)
        machine = device.machine
    result = {
        "tool": "horq-keras bench",
        "horq_keras_version": _version("horq-keras"),
        "created_utc": started.isoformat(timespec="seconds"),
        "target": str(spec),
        "machine": machine,
        "runner": runner,
        # Operator profiles come from lce_benchmark_model only.
        "settings": dataclasses.asdict(
            settings if benchmark_binary else dataclasses.replace(settings, op_profiling=False)),
        "model": {**files["model"], **measured["model"]},
        "baseline": {**files["baseline"], **measured["baseline"]} if baseline else None,
        "speedup_vs_baseline": None,
        "ratio_statistic": None,
    }
    if baseline is not None:
        result["speedup_vs_baseline"], result["ratio_statistic"] = _ratio(
            result["model"], result["baseline"])
    return result
