"""LCE's interpreter without TensorFlow: load a flatbuffer, run samples in batches.

The one place that drives Larq Compute Engine's interpreter (``LiteInterpreter`` of
its ``interpreter_wrapper_lite`` extension); :mod:`horq_keras.tflite.runner` runs it
in this process or in a child process. The extension is loaded by its file path, so
neither TensorFlow nor ``larq_compute_engine``'s converter is imported (seconds, and
hundreds of MB).

This module needs only the standard library and NumPy, and never imports horq_keras:
it is also the script of the child process (``python interpreter.py WORKDIR``, see
:func:`main`). WORKDIR holds ``job.json`` (:class:`InterpreterOptions` and
``progress``), ``model.tflite`` and ``inputs.npz``; the outputs go to ``outputs.npz``,
a Python error to ``error.txt``.
"""

import contextlib
import dataclasses
import functools
import importlib.machinery
import importlib.util
import json
import os
import sys
import tempfile
import traceback

import numpy as np

__all__ = ["DELEGATE_NOTICE", "InterpreterOptions", "LceInterpreter", "lce_extension", "main"]


@dataclasses.dataclass(frozen=True)
class InterpreterOptions:
    """Arguments of LCE's interpreter; the defaults are its fastest x86 path.

    ``use_indirect_bgemm`` (LCE's indirect binary GEMM kernels) and ``use_xnnpack``
    (XNNPACK for the float ops) are what LCE's own benchmarks use on x86. One thread:
    a small model is too little work to split, and XNNPACK's worker threads spin while
    waiting on a busy machine.
    """

    num_threads: int = 1
    use_reference_bconv: bool = False
    use_indirect_bgemm: bool = True
    use_xnnpack: bool = True


#: The line TFLite's C++ logging prints to stderr whenever it applies XNNPACK.
DELEGATE_NOTICE = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


@contextlib.contextmanager
def _without_delegate_notice():
    """Capture what native code writes to stderr (file descriptor 2) in the block, and
    write it back without :data:`DELEGATE_NOTICE`: every other line still shows."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if line.strip() != DELEGATE_NOTICE)
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


@functools.lru_cache(maxsize=None)
def lce_extension():
    """LCE's compiled interpreter module (``interpreter_wrapper_lite``).

    Raises:
        ImportError: larq-compute-engine is not installed, or has no extension here.
    """
    spec = importlib.util.find_spec("larq_compute_engine")  # does not import it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "larq-compute-engine is not installed (`pip install larq-compute-engine`).")
    directory = os.path.join(spec.submodule_search_locations[0], "tflite", "python")
    name = "larq_compute_engine.tflite.python.interpreter_wrapper_lite"
    files = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
    for file_name in files:
        if file_name.startswith("interpreter_wrapper_lite.") and file_name.endswith(
            tuple(importlib.machinery.EXTENSION_SUFFIXES)
        ):
            path = os.path.join(directory, file_name)
            loader = importlib.machinery.ExtensionFileLoader(name, path)
            module = importlib.util.module_from_spec(
                importlib.util.spec_from_file_location(name, path, loader=loader))
            loader.exec_module(module)
            return module
    raise ImportError(f"LCE's interpreter extension was not found in {directory}.")


class LceInterpreter:
    """A flatbuffer loaded in LCE's interpreter (TFLite's builtin ops plus LCE's).

    Raises ``RuntimeError`` (LCE's message) when the interpreter cannot load it.
    """

    def __init__(self, flatbuffer, options=InterpreterOptions()):
        self.options = options
        with _without_delegate_notice():
            self._interpreter = lce_extension().LiteInterpreter(
                bytes(flatbuffer), options.num_threads, options.use_reference_bconv,
                options.use_indirect_bgemm, options.use_xnnpack,
            )

    @property
    def input_shapes(self):
        return [tuple(shape) for shape in self._interpreter.input_shapes]

    @property
    def input_types(self):
        return list(self._interpreter.input_types)

    @property
    def output_shapes(self):
        return [tuple(shape) for shape in self._interpreter.output_shapes]

    def invoke(self, inputs):
        """One inference: ``inputs`` are arrays of exactly the model's input shapes."""
        return self._interpreter.predict(list(inputs))

    def predict(self, inputs, progress=False):
        """Outputs for all samples of ``inputs`` (one array per model input, samples
        on axis 0), run in batches of the model's batch size; one array per output.

        A last, incomplete batch is padded with zeros and its padding dropped.
        ``progress`` shows a progress bar (tqdm, on stderr).
        """
        inputs = [np.asarray(x) for x in inputs]
        batch = int(self.input_shapes[0][0]) or 1
        count = len(inputs[0])
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=count, desc="TFLite inference", unit="sample", file=sys.stderr)
        parts = []
        for start in range(0, count, batch):
            chunk = [x[start:start + batch] for x in inputs]
            size = len(chunk[0])
            if size < batch:
                chunk = [np.concatenate([c, np.zeros((batch - size, *c.shape[1:]), c.dtype)])
                         for c in chunk]
            parts.append([out[:size] for out in self.invoke(chunk)])
            if bar is not None:
                bar.update(size)
        if bar is not None:
            bar.close()
        return [np.concatenate(outputs) for outputs in zip(*parts)]


def main(workdir):
    """Child process: run ``WORKDIR/model.tflite`` on ``WORKDIR/inputs.npz``."""
    with open(os.path.join(workdir, "job.json")) as file:
        job = json.load(file)
    with open(os.path.join(workdir, "model.tflite"), "rb") as file:
        flatbuffer = file.read()
    progress = job.pop("progress")
    interpreter = LceInterpreter(flatbuffer, InterpreterOptions(**job))
    with np.load(os.path.join(workdir, "inputs.npz")) as data:
        inputs = [data[f"input_{i}"] for i in range(len(data.files))]
    outputs = interpreter.predict(inputs, progress=progress)
    np.savez(os.path.join(workdir, "outputs.npz"),
             **{f"output_{j}": output for j, output in enumerate(outputs)})


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception:  # noqa: BLE001 - reported to the parent process through a file
        with open(os.path.join(sys.argv[1], "error.txt"), "w") as error_file:
            error_file.write(traceback.format_exc())
        sys.exit(1)
