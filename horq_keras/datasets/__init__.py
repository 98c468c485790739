"""Data sources: the one meaning of ``--data`` in ``train``, ``convert`` and ``verify``.

- :mod:`.sources` — the ``--data`` value (``mnist``, ``idx:DIR``, ``folder:DIR``,
  ``tfds:NAME``, and ``PATH.npy`` where a command takes arrays); no TensorFlow, so the
  command-line parsers stay instant.
- :mod:`.mnist` — MNIST from its original IDX files, checksum-verified, with the one
  location rule (:func:`~.mnist.mnist_directory`), and any data in MNIST's IDX layout.
- :mod:`.pipelines` — :func:`~.pipelines.inspect_data` (check a source before anything
  is written) and :func:`~.pipelines.make_datasets` (its ``tf.data`` pipelines).

The names below load their module on first use, so that importing
``horq_keras.datasets.sources`` does not import TensorFlow.
"""

import importlib

_EXPORTS = {
    "mnist": ("DEFAULT_DIR", "ENV_VAR", "FIX_COMMAND", "SHA256", "MnistDataError",
              "MnistNotFoundError", "load_idx", "load_mnist", "mnist_datasets",
              "mnist_directory", "scale_images"),
    "sources": ("KINDS", "DataSource", "parse_source"),
    "pipelines": ("DataError", "DataInfo", "inspect_data", "make_datasets"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    if name in _MODULE_OF:
        return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
