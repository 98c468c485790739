"""Runs inside the emulated aarch64 Python (see benchmarks/arm_emulated.py): invokes each
TFLite model of a manifest with the aarch64 ai-edge-litert interpreter (1 thread, its
default XNNPACK delegate) between marker system calls that benchmarks/arm/marker_plugin.c
turns into guest instruction counts.

For model i (tags 4i..4i+3): load, allocate, fill the inputs from a seeded generator,
invoke once (warm-up: XNNPACK packs its weights), then marker 4i, a loop of 0 invocations,
marker 4i+1, marker 4i+2, a loop of ``repeats`` invocations, marker 4i+3. The host takes
((c[4i+3] - c[4i+2]) - (c[4i+1] - c[4i])) / repeats as the count of one invocation.

Usage: python3.11 guest_count.py MANIFEST.json START  (manifest: {"repeats": N,
"models": [paths]}); prints "BEGIN i" before model i so a crash names its model.
"""

import ctypes
import json
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter

MARKER_SYSCALL = 4090
_syscall = ctypes.CDLL(None).syscall


def marker(tag):
    _syscall(MARKER_SYSCALL, ctypes.c_long(tag))


def fill_inputs(interpreter, seed):
    rng = np.random.default_rng(seed)
    for detail in interpreter.get_input_details():
        dtype = np.dtype(detail["dtype"])
        if dtype.kind == "f":
            value = rng.standard_normal(detail["shape"]).astype(dtype)
        else:
            info = np.iinfo(dtype)
            value = rng.integers(info.min, info.max, size=detail["shape"], dtype=dtype)
        interpreter.set_tensor(detail["index"], value)


def main(manifest_path, start):
    with open(manifest_path) as f:
        manifest = json.load(f)
    repeats = manifest["repeats"]
    for i, path in enumerate(manifest["models"]):
        if i < start:
            continue
        print(f"BEGIN {i}", flush=True)
        interpreter = Interpreter(model_path=path, num_threads=1)
        interpreter.allocate_tensors()
        fill_inputs(interpreter, i)
        invoke = interpreter.invoke
        invoke()
        marker(4 * i)
        for _ in range(0):
            invoke()
        marker(4 * i + 1)
        marker(4 * i + 2)
        for _ in range(repeats):
            invoke()
        marker(4 * i + 3)
        del interpreter, invoke
    print("DONE", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
