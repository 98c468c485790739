"""Read a converted TFLite flatbuffer: its operators, by builtin or custom name."""

import collections

from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

_BUILTIN_NAMES = {
    code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")
}


def operator_names(flatbuffer):
    """Names of the operators of the main subgraph, in execution order.

    Custom ops (LCE's ``LceBconv2d``, ``LceQuantize``, ...) are named by their custom
    code, builtin ops by their ``BuiltinOperator`` name (``CONV_2D``, ``MUL``, ...).
    """
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    codes = model.operatorCodes
    names = []
    for op in model.subgraphs[0].operators:
        code = codes[op.opcodeIndex]
        if code.customCode:
            custom = code.customCode
            names.append(custom.decode() if isinstance(custom, bytes) else custom)
        else:
            names.append(_BUILTIN_NAMES[max(code.builtinCode, code.deprecatedBuiltinCode)])
    return names


def op_counts(flatbuffer):
    """``collections.Counter`` of :func:`operator_names`."""
    return collections.Counter(operator_names(flatbuffer))
