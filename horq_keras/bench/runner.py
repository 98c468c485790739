"""Small latency runner that ``horq-keras bench`` copies to the target and runs there.

Standalone: it needs Python 3.8 or newer, NumPy and one interpreter — LCE's (the
``larq-compute-engine`` package, which runs LCE's binary operators) or, for models
without LCE operators, TFLite's (``tflite-runtime`` or ``tensorflow``). It never imports
horq_keras, so a board needs none of the training stack::

    python runner.py MODEL [MODEL ...] [--threads N] [--runs N] [--warmup N]
                     [--no-xnnpack] [--no-indirect-bgemm] [--reference-bconv]
                     [--runtime auto|lce|tflite]

Measurement (the models share one process): each model is loaded and run ``warmup``
times untimed for the statistics; its first inference, which includes lazy allocation,
is reported as ``first_us``. Then come ``runs`` rounds that each time one inference of
every model in turn, so all models see the same machine state (clock, temperature,
other load) and their ratio is fair. Inputs are fixed random tensors of each model's
input shapes and types.

Output: one line ``HORQ_BENCH_RESULT <json>`` on stdout with ``runtime`` and, per model,
``first_us`` and ``latency_us`` (one time per round). When a model cannot be loaded or
run, the line holds ``{"error": ..., "model": ...}`` and the exit status is 3.
"""

import argparse
import functools
import importlib.machinery
import importlib.util
import json
import os
import sys
import time

MARKER = "HORQ_BENCH_RESULT"
EXIT_MODEL_ERROR = 3
RUNTIMES = ("auto", "lce", "tflite")


class RunnerError(Exception):
    """A model could not be loaded or run; the message says why, ``model`` which one."""

    model = None


@functools.lru_cache(maxsize=None)  # noqa: UP033 (Python 3.8 on older boards)
def _lce_wrapper():
    """LCE's interpreter extension module, or ``None`` when LCE is not installed.

    Loaded straight from its file: importing ``larq_compute_engine`` itself would import
    TensorFlow for the converter (seconds, and hundreds of MB on a board).
    """
    spec = importlib.util.find_spec("larq_compute_engine")
    if spec is None or not spec.submodule_search_locations:
        return None
    directory = os.path.join(spec.submodule_search_locations[0], "tflite", "python")
    name = "larq_compute_engine.tflite.python.interpreter_wrapper_lite"
    for file_name in sorted(os.listdir(directory)) if os.path.isdir(directory) else ():
        if file_name.startswith("interpreter_wrapper_lite.") and file_name.endswith(
            tuple(importlib.machinery.EXTENSION_SUFFIXES)
        ):
            path = os.path.join(directory, file_name)
            loader = importlib.machinery.ExtensionFileLoader(name, path)
            module = importlib.util.module_from_spec(
                importlib.util.spec_from_file_location(name, path, loader=loader)
            )
            loader.exec_module(module)
            return module
    return None


def _tflite_interpreter_class():
    try:
        from tflite_runtime.interpreter import Interpreter, OpResolverType
    except ImportError:
        try:
            from tensorflow.lite.python.interpreter import Interpreter, OpResolverType
        except ImportError:
            return None, None
    return Interpreter, OpResolverType


def _random_input(rng, shape, dtype):
    import numpy as np

    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(0.0, 1.0, size=shape).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -128), min(info.max, 127) + 1, size=shape, dtype=dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    raise RunnerError(f"unsupported input type {dtype}")


class LceModel:
    """A model on LCE's interpreter (all TFLite builtin operators plus LCE's)."""

    def __init__(self, wrapper, model_bytes, args, rng):
        try:
            self._interpreter = wrapper.LiteInterpreter(
                model_bytes, args.threads, args.reference_bconv, args.indirect_bgemm, args.xnnpack
            )
        except RuntimeError as error:
            raise RunnerError(f"LCE's interpreter cannot load it: {str(error).strip()}") from None
        self._inputs = [
            _random_input(rng, shape, dtype)
            for shape, dtype in zip(self._interpreter.input_shapes, self._interpreter.input_types)  # noqa: B905
        ]

    def __call__(self):
        self._interpreter.predict(self._inputs)


class TfliteModel:
    """A model on TFLite's interpreter: builtin operators only (no LCE operators)."""

    def __init__(self, classes, model_bytes, args, rng):
        interpreter_class, resolver = classes
        resolver_type = (resolver.AUTO if args.xnnpack
                         else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        try:
            self._interpreter = interpreter_class(
                model_content=model_bytes, num_threads=args.threads,
                experimental_op_resolver_type=resolver_type,
            )
            self._interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as error:
            message = str(error).strip()
            if "Lce" in message:
                message += (" -- the model has LCE operators: install larq-compute-engine "
                            "on the target or use LCE's lce_benchmark_model (--benchmark-binary)")
            raise RunnerError(f"TFLite's interpreter cannot load it: {message}") from None
        for detail in self._interpreter.get_input_details():
            self._interpreter.set_tensor(
                detail["index"], _random_input(rng, detail["shape"], detail["dtype"])
            )

    def __call__(self):
        self._interpreter.invoke()


def load_model(path, args, rng):
    """A callable that runs the model at ``path`` once on fixed random inputs.

    ``args`` holds ``threads``, ``xnnpack``, ``indirect_bgemm``, ``reference_bconv`` and
    ``runtime`` as parsed by :func:`main`; raises :class:`RunnerError` when it cannot.
    """
    try:
        with open(path, "rb") as file:
            model_bytes = file.read()
    except OSError as error:
        raise RunnerError(f"cannot read it: {error}") from None
    wrapper = _lce_wrapper() if args.runtime in ("auto", "lce") else None
    if wrapper is not None:
        return LceModel(wrapper, model_bytes, args, rng)
    if args.runtime == "lce":
        raise RunnerError("larq-compute-engine is not installed for this Python")
    classes = _tflite_interpreter_class()
    if classes[0] is None:
        raise RunnerError(
            "no interpreter: install larq-compute-engine (LCE models) or tflite-runtime"
        )
    return TfliteModel(classes, model_bytes, args, rng)


def runtime_name(args):
    """Which interpreter ``args.runtime`` selects here, with its version."""
    from importlib import metadata

    if args.runtime != "tflite" and _lce_wrapper() is not None:
        return f"larq-compute-engine {metadata.version('larq-compute-engine')}"
    for package in ("tflite-runtime", "tensorflow"):
        try:
            return f"{package} {metadata.version(package)}"
        except metadata.PackageNotFoundError:
            continue
    return "none"


def time_us(model):
    """Microseconds one call of ``model`` takes (``time.perf_counter_ns``)."""
    start = time.perf_counter_ns()
    model()
    return (time.perf_counter_ns() - start) / 1e3


def _warm_up(path, args, rng):
    """Load ``path`` and run it ``args.warmup`` times; ``(model, first run in us)``."""
    model = load_model(path, args, rng)
    try:
        first = time_us(model)
        for _ in range(args.warmup - 1):
            model()
    except (RuntimeError, ValueError) as error:  # what the interpreters raise on invoke
        raise RunnerError(f"running it failed: {str(error).strip()}") from None
    return model, first


def measure(paths, args):
    """Load and time every model of ``paths`` (see the module docstring)."""
    import numpy as np

    rng = np.random.default_rng(0)
    models, first_us = [], []
    for path in paths:
        try:
            model, first = _warm_up(path, args, rng)
        except RunnerError as error:
            error.model = path
            raise
        models.append(model)
        first_us.append(first)
    latency_us = [[] for _ in models]
    for _ in range(args.runs):
        for times, model in zip(latency_us, models):  # noqa: B905
            times.append(time_us(model))
    return [
        {"model": path, "first_us": first, "latency_us": times}
        for path, first, times in zip(paths, first_us, latency_us)  # noqa: B905
    ]


def _at_least(minimum):
    def parse(text):
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}; got {text}")
        return value
    return parse


def main(argv=None):
    parser = argparse.ArgumentParser(description="Time TFLite / LCE models (horq-keras bench).")
    parser.add_argument("models", nargs="+", metavar="MODEL")
    parser.add_argument("--threads", type=_at_least(1), default=1)
    parser.add_argument("--runs", type=_at_least(1), default=50)
    parser.add_argument("--warmup", type=_at_least(1), default=5)
    for flag, default in (("xnnpack", True), ("indirect-bgemm", True), ("reference-bconv", False)):
        parser.add_argument(f"--{flag}", dest=flag.replace("-", "_"), action="store_true")
        parser.add_argument(f"--no-{flag}", dest=flag.replace("-", "_"), action="store_false")
        parser.set_defaults(**{flag.replace("-", "_"): default})
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto")
    args = parser.parse_args(argv)
    try:
        import numpy  # noqa: F401
    except ImportError:
        print(MARKER, json.dumps({"error": "NumPy is not installed for this Python", "model": None}))
        return EXIT_MODEL_ERROR
    try:
        results = measure(args.models, args)
    except RunnerError as error:
        print(MARKER, json.dumps({"error": str(error), "model": error.model}))
        return EXIT_MODEL_ERROR
    print(MARKER, json.dumps({"runtime": runtime_name(args), "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
