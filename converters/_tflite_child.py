"""Child process of :mod:`horq_keras.converters.runner`: run a flatbuffer with LCE.

Run as a script (``python _tflite_child.py WORKDIR``), never imported: it loads LCE's
interpreter extension by file path so that neither TensorFlow nor horq_keras is
imported, and a crash of the interpreter on a damaged file ends only this process.
WORKDIR holds ``job.json``, ``model.tflite`` and ``inputs.npz``; the outputs go to
``outputs.npz``, a Python error to ``error.txt``.
"""

import importlib.util
import json
import os
import sys
import traceback

import numpy as np


def _load_extension(path):
    spec = importlib.util.spec_from_file_location("interpreter_wrapper_lite", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(workdir):
    with open(os.path.join(workdir, "job.json")) as file:
        job = json.load(file)
    with open(os.path.join(workdir, "model.tflite"), "rb") as file:
        flatbuffer = file.read()
    extension = _load_extension(job["extension"])
    interpreter = extension.LiteInterpreter(
        flatbuffer,
        job["num_threads"],
        job["use_reference_bconv"],
        job["use_indirect_bgemm"],
        job["use_xnnpack"],
    )
    with np.load(os.path.join(workdir, "inputs.npz")) as data:
        inputs = [data[f"input_{i}"] for i in range(len(data.files))]
    samples = range(len(inputs[0]))
    if job["progress"]:
        from tqdm import tqdm

        samples = tqdm(samples, desc="TFLite inference", unit="sample", file=sys.stderr)
    batches = [interpreter.predict([x[i : i + 1] for x in inputs]) for i in samples]
    outputs = {f"output_{j}": np.concatenate(parts) for j, parts in enumerate(zip(*batches))}
    np.savez(os.path.join(workdir, "outputs.npz"), **outputs)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception:  # noqa: BLE001 - reported to the parent process through a file
        with open(os.path.join(sys.argv[1], "error.txt"), "w") as error_file:
            error_file.write(traceback.format_exc())
        sys.exit(1)
