"""Load the Keras model to convert: a ``tf.keras.Model`` or a saved model path.

Saved models load with larq's, horq_keras's and tensorflow-model-optimization's
custom objects in scope (so QAT-prepared models load too); every failure is a clear
error that names the argument and what to do.
"""

import importlib
import importlib.util
import json
import os
import re
import zipfile

import h5py
import tensorflow as tf

from horq_keras.tflite.check import is_flatbuffer

__all__ = ["import_modules", "load_model"]

_FORMATS = "a .keras or .h5 file, or a SavedModel directory"
#: What Keras and larq say about an object they do not know (legacy .h5 / SavedModel,
#: .keras, a larq quantizer given as a config dict), each capturing its name.
_UNKNOWN_OBJECT = re.compile(
    r"Unknown (?:layer|object|initializer|regularizer|constraint|activation|loss|metric)"
    r"[^'`]*['`](?P<unknown>[^'`]+)['`]"
    r"|Cannot deserialize object of type `(?P<type>[^`]+)`"
    r"|Could not locate (?:class|function) '(?P<locate>[^']+)'"
    r"|Could not interpret \w+ function identifier: \{'class_name': '(?P<larq>[^']+)'"
    r"|Received: layer=(?P<sequential>\w+) of type <class 'str'>"
)


def import_modules(names):
    """Import the modules ``names`` (they register their custom Keras objects)."""
    for name in names or ():
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ValueError(f"`--import`: cannot import module {name!r}: {error}") from error
        except Exception as error:  # noqa: BLE001 - the user's module failed: say so, no traceback
            raise ValueError(f"`--import`: module {name!r} raised {type(error).__name__} when "
                             f"imported: {error}") from error


def _reject_tflite(path, argument):
    with open(path, "rb") as file:
        head = file.read(8)
    if is_flatbuffer(head):
        raise ValueError(
            f"`{argument}` ({path!r}) is a TFLite flatbuffer, not a Keras model. Conversion "
            f"needs the trained Keras model ({_FORMATS}); to check an existing .tflite "
            f"against its Keras model run `horq-keras verify MODEL {path}`."
        )


def _reject_weights_only(path, argument):
    """An HDF5 file without a model configuration holds weights only (``save_weights``)."""
    if not h5py.is_hdf5(path):
        return
    with h5py.File(path, "r") as file:
        if "model_config" not in file.attrs:
            raise ValueError(
                f"`{argument}` ({path!r}) holds weights only, no model (it was written by "
                f"save_weights); save the whole model with model.save({path!r}), or build "
                f"the model in Python, load_weights() and pass the model."
            )


def _unimportable_classes(path):
    """``class_name`` of the objects of a .keras archive whose module cannot be imported
    (tf-keras then fails with an unrelated TypeError instead of naming them)."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return []
    found, stack = [], [config]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            module, name = item.get("module"), item.get("class_name")
            if isinstance(module, str) and isinstance(name, str):
                try:
                    missing = importlib.util.find_spec(module.split(".")[0]) is None
                except (ImportError, ValueError):
                    missing = True
                if missing and name not in tf.keras.utils.get_custom_objects():
                    found.append(name)
            stack.extend(item.values())
    return sorted(set(found))


def _custom_object_error(error, path, argument):
    match = _UNKNOWN_OBJECT.search(str(error))
    if match:
        names = [next(name for name in match.groups() if name)]
    else:
        names = _unimportable_classes(path)
    if not names:
        return None
    name = names[0]
    python_name = re.sub(r"\W", "_", name.split(">")[-1])
    return ValueError(
        f"`{argument}` ({path!r}) uses the custom object {name!r}, which Keras does not "
        f"know. Import the module that defines and registers it before converting "
        f"(CLI: `--import my_package.layers`), or pass it: `from my_package.layers import "
        f"{python_name}` and `custom_objects={{{name!r}: {python_name}}}`."
    )


def load_model(model_or_path, *, custom_objects=None, argument="model"):
    """Return a ``tf.keras.Model`` for ``model_or_path``.

    Args:
        model_or_path: a ``tf.keras.Model``, or the path of a saved Keras model
            (.keras, .h5, SavedModel directory).
        custom_objects: extra ``{name: class}`` needed to deserialize the model.
        argument: the argument name used in error messages.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the path is a .tflite file, not a Keras model, or uses unknown
            custom objects.
        TypeError: ``model_or_path`` is neither a model nor a path.
    """
    if isinstance(model_or_path, tf.keras.Model):
        return model_or_path
    if not isinstance(model_or_path, (str, os.PathLike)):
        raise TypeError(
            f"`{argument}` must be a tf.keras.Model or the path of a saved Keras model "
            f"({_FORMATS}); got {type(model_or_path).__name__}."
        )
    path = os.fspath(model_or_path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"`{argument}`: no such file or directory {path!r}.")
    if os.path.isfile(path):
        _reject_tflite(path, argument)
        _reject_weights_only(path, argument)

    import tensorflow_model_optimization as tfmot

    try:
        with tfmot.quantization.keras.quantize_scope(custom_objects or {}):
            return tf.keras.models.load_model(path, compile=False)
    except (TypeError, ValueError) as error:
        raise _custom_object_error(error, path, argument) or ValueError(
            f"`{argument}` ({path!r}) could not be loaded as a Keras model: {error}"
        ) from error
    except OSError as error:
        raise ValueError(
            f"`{argument}` ({path!r}) is not a Keras model ({_FORMATS}): {error}"
        ) from error
