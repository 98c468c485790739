"""Read a converted TFLite flatbuffer: its operators, tensors and constant buffers.

:func:`read_graph` gives the main subgraph as plain Python values (operator names,
tensor shapes and dtypes, LCE custom options) for the report, the MAC count and the
structural check of untrusted files; :func:`operator_names` and :func:`op_counts`
are the short forms.

TFLite's flatbuffer schema (``schema_py_generated.py``, generated code that needs only
the ``flatbuffers`` package) is loaded from TensorFlow's installation by its file path,
so reading a model never imports TensorFlow itself (seconds, and its log lines).
"""

import collections
import functools
import importlib.util
import os
from dataclasses import dataclass, field

__all__ = ["Graph", "Operator", "Tensor", "op_counts", "operator_names", "read_graph"]


@functools.lru_cache(maxsize=None)
def _schema():
    """TFLite's generated schema module, loaded without importing TensorFlow."""
    spec = importlib.util.find_spec("tensorflow")  # finds the package, does not import it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("reading .tflite files needs TFLite's schema from the tensorflow "
                          "package (`pip install tensorflow`).")
    path = os.path.join(spec.submodule_search_locations[0], "lite", "python",
                        "schema_py_generated.py")
    module_spec = importlib.util.spec_from_file_location("horq_keras.tflite._schema", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@functools.lru_cache(maxsize=None)
def _names(enum):
    """``{code: name}`` of one of the schema's enums (``BuiltinOperator``, ``TensorType``)."""
    values = vars(getattr(_schema(), enum)).items()
    return {code: name for name, code in values if not name.startswith("_")}


@dataclass(frozen=True)
class Tensor:
    """One tensor of the subgraph; ``constant`` when its buffer holds data."""

    index: int
    name: str
    shape: tuple
    dtype: str
    buffer: int
    constant: bool
    is_variable: bool


@dataclass(frozen=True)
class Operator:
    """One operator: builtin name (``CONV_2D``) or custom code (``LceBconv2d``)."""

    index: int
    name: str
    inputs: tuple  # of Tensor, or None for an omitted optional input
    outputs: tuple  # of Tensor
    custom_options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Graph:
    """The main subgraph of a flatbuffer and the sizes of its constant buffers."""

    operators: tuple
    tensors: tuple
    inputs: tuple
    outputs: tuple
    buffer_sizes: dict  # buffer index -> bytes of constant data
    model: object  # the flatbuffer's schema object (``ModelT``)

    def producer(self, tensor):
        """The operator that writes ``tensor``, or None for an input or a constant."""
        return next((op for op in self.operators
                     if any(out is not None and out.index == tensor.index for out in op.outputs)),
                    None)


def _name(value):
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


def _opcode_name(code):
    if code.customCode:
        return _name(code.customCode)
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    return _names("BuiltinOperator").get(builtin, "UNKNOWN")


def _buffer_size(buffer):
    if buffer.data is not None and len(buffer.data):
        return len(buffer.data)
    return int(buffer.size) if buffer.offset > 1 else 0


def _custom_options(op):
    if op.customOptions is None or not len(op.customOptions):
        return {}
    from flatbuffers import flexbuffers  # imports NumPy: only for models with custom ops

    options = flexbuffers.Loads(bytes(bytearray(op.customOptions)))
    return dict(options) if isinstance(options, dict) else {"value": options}


def read_graph(flatbuffer):
    """Parse ``flatbuffer`` (bytes) into a :class:`Graph` of its main subgraph.

    Parsing is done in Python and bounds-checked: a truncated buffer raises an
    exception here instead of crashing a C++ reader.
    """
    schema = _schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(flatbuffer), 0))
    subgraph = model.subgraphs[0]
    buffer_sizes = {i: _buffer_size(b) for i, b in enumerate(model.buffers or [])}
    tensors = tuple(
        Tensor(
            index=i,
            name=_name(t.name),
            shape=tuple(int(d) for d in (t.shape if t.shape is not None else ())),
            dtype=_names("TensorType").get(t.type, f"type{t.type}").lower(),
            buffer=int(t.buffer),
            constant=buffer_sizes.get(int(t.buffer), 0) > 0,
            is_variable=bool(t.isVariable),
        )
        for i, t in enumerate(subgraph.tensors or [])
    )

    def tensor(index):
        if index == -1:  # an omitted optional input
            return None
        if not 0 <= index < len(tensors):
            raise IndexError(f"tensor index {index} out of range (0..{len(tensors) - 1})")
        return tensors[index]

    operators = tuple(
        Operator(
            index=i,
            name=_opcode_name(model.operatorCodes[op.opcodeIndex]),
            inputs=tuple(tensor(t) for t in (op.inputs if op.inputs is not None else ())),
            outputs=tuple(tensor(t) for t in (op.outputs if op.outputs is not None else ())),
            custom_options=_custom_options(op),
        )
        for i, op in enumerate(subgraph.operators or [])
    )
    return Graph(
        operators=operators,
        tensors=tensors,
        inputs=tuple(tensor(i) for i in (subgraph.inputs if subgraph.inputs is not None else ())),
        outputs=tuple(
            tensor(i) for i in (subgraph.outputs if subgraph.outputs is not None else ())
        ),
        buffer_sizes=buffer_sizes,
        model=model,
    )


def operator_names(flatbuffer):
    """Names of the operators of the main subgraph, in execution order.

    Custom ops (LCE's ``LceBconv2d``, ``LceQuantize``, ...) are named by their custom
    code, builtin ops by their ``BuiltinOperator`` name (``CONV_2D``, ``MUL``, ...).
    """
    return [op.name for op in read_graph(flatbuffer).operators]


def op_counts(flatbuffer):
    """``collections.Counter`` of :func:`operator_names`."""
    return collections.Counter(operator_names(flatbuffer))
