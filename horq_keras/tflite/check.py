"""Read and structurally check a .tflite file before any C++ code touches it.

Neither TensorFlow Lite's nor LCE's Python interpreter verifies a flatbuffer: a
truncated or corrupted file can crash the process. :func:`check_flatbuffer` parses it
in bounds-checked Python and checks that every index, shape and constant buffer is
consistent; what survives is still best run in a child process (:mod:`.runner`).
"""

import math
import os

from horq_keras.tflite.graph import read_graph

__all__ = ["TFLITE_IDENTIFIER", "check_flatbuffer", "is_flatbuffer", "read_tflite"]

#: File identifier of TFLite flatbuffers (bytes 4..8).
TFLITE_IDENTIFIER = b"TFL3"

_FIXED_ITEM_SIZES = {
    "float32": 4, "float16": 2, "float64": 8, "int32": 4, "uint32": 4, "int64": 8,
    "uint64": 8, "int16": 2, "uint16": 2, "int8": 1, "uint8": 1, "bool": 1,
    "complex64": 8, "complex128": 16,
}


def is_flatbuffer(data):
    """True when ``data`` starts like a TFLite flatbuffer."""
    return len(data) >= 8 and bytes(data[4:8]) == TFLITE_IDENTIFIER


def _corrupt(source, detail):
    return ValueError(
        f"{source} is a truncated or corrupt TFLite file ({detail}); convert the model "
        f"again with `horq-keras convert`."
    )


def _check_graph(graph, size, source):
    model = graph.model
    if model.version != 3:
        raise _corrupt(source, f"schema version {model.version}, expected 3")
    for tensor in graph.tensors:
        if any(d < -1 for d in tensor.shape):
            raise _corrupt(source, f"tensor {tensor.index} has shape {tensor.shape}")
        if not 0 <= tensor.buffer < len(model.buffers):
            raise _corrupt(source, f"tensor {tensor.index} names buffer {tensor.buffer}")
        if tensor.constant and tensor.is_variable:
            raise _corrupt(source, f"tensor {tensor.index} is a variable with data")
        item = _FIXED_ITEM_SIZES.get(tensor.dtype)
        if tensor.constant and item is not None:
            expected = math.prod(tensor.shape) * item
            if graph.buffer_sizes[tensor.buffer] != expected:
                raise _corrupt(
                    source,
                    f"tensor {tensor.index} of shape {tensor.shape} ({tensor.dtype}) has "
                    f"{graph.buffer_sizes[tensor.buffer]} bytes of data, expected {expected}",
                )
    for index, buffer in enumerate(model.buffers):
        if buffer.offset > 1 and buffer.offset + buffer.size > size:
            raise _corrupt(source, f"buffer {index} ends after the end of the file")
    for op in graph.operators:
        if not op.outputs or any(t is None for t in op.outputs):
            raise _corrupt(source, f"operator {op.index} ({op.name}) has no valid output")
        if op.name == "UNKNOWN":
            raise _corrupt(source, f"operator {op.index} has an unknown builtin code")
    if not graph.inputs or not graph.outputs:
        raise _corrupt(source, "the main subgraph has no inputs or no outputs")
    if any(t.constant for t in graph.inputs):
        raise _corrupt(source, "an input of the main subgraph is a constant")


def check_flatbuffer(data, source="`tflite`"):
    """Check that ``data`` is a well-formed TFLite flatbuffer; return its ``Graph``.

    ``source`` names the data in messages (for example ``"`tflite` ('m.tflite')"``).
    Raises ``ValueError`` naming it when the data is not a TFLite flatbuffer
    or is truncated or corrupt.
    """
    if not is_flatbuffer(data):
        raise ValueError(
            f"{source} is not a TFLite flatbuffer (no {TFLITE_IDENTIFIER.decode()} file "
            f"identifier; {len(data)} bytes): pass a .tflite file written by "
            f"`horq-keras convert` or LCE."
        )
    try:
        graph = read_graph(data)
    except Exception as error:
        raise _corrupt(source, f"{type(error).__name__}: {error}") from error
    _check_graph(graph, len(data), source)
    return graph


def read_tflite(path, argument="tflite"):
    """Read and check the .tflite file at ``path``; return ``(bytes, Graph)``."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"`{argument}`: no such file {path!r}.")
    if os.path.isdir(path):
        raise ValueError(f"`{argument}` must be a .tflite file; {path!r} is a directory.")
    with open(path, "rb") as file:
        data = file.read()
    return data, check_flatbuffer(data, source=f"`{argument}` ({path!r})")
