"""Registration of the package's custom Keras objects under both names Keras files use.

Keras 2 looks a class up by its registered name ``"horq_keras>Name"`` (what
``register_keras_serializable`` writes into ``.keras`` / SavedModel / ``.h5`` configs);
larq resolves quantizers given as a config dict by the plain ``"Name"`` in Keras'
global custom objects. :func:`register` does both.

``import horq_keras`` stays cheap (no TensorFlow), so the classes themselves are not
imported then. Instead, as soon as Keras 2 (``tf_keras``) is imported — at once when it
already is — every name of :data:`OBJECTS` is put into Keras' custom objects as a
stand-in that imports the real class on first use (and the real class replaces it).
A saved model that uses objects of this package therefore loads after ``import
horq_keras`` alone, whatever is imported next and in which order. larq's own objects
(:data:`LARQ_OBJECTS`, which larq registers under their plain names when it is
imported) get such stand-ins too: a model whose first custom layer is larq's loads the
same way.
"""

import importlib
import importlib.abc
import importlib.machinery
import sys

__all__ = ["LARQ_OBJECTS", "OBJECTS", "PACKAGE", "install", "register"]

#: Keras package name of every registered object.
PACKAGE = "horq_keras"

#: Every registered class of the package, by the module that defines it.
OBJECTS = {
    "horq_keras.quantizers": ("ResidualSign",),
    "horq_keras.layers.horq": ("HORQConv2D", "HORQDense"),
    "horq_keras.layers.bitplane": ("BitPlaneConv2D",),
    "horq_keras.groupnet.quantizers": ("BinaryWeight", "UniformActivation"),
    "horq_keras.groupnet.branches": ("BranchScales",),
    "horq_keras.groupnet.recompute": ("RecomputedBranchesModel",),
    "horq_keras.converters.batchnorm_fold": ("FoldedHORQConv2D",),
    "horq_keras.training.distill": ("DistillationLoss",),
}

#: Every object larq registers (as plain ``Name``) when it is imported, by its module.
LARQ_OBJECTS = {
    "larq.layers": ("QuantConv1D", "QuantConv2D", "QuantConv2DTranspose", "QuantConv3D",
                    "QuantConv3DTranspose", "QuantDense", "QuantDepthwiseConv2D",
                    "QuantLocallyConnected1D", "QuantLocallyConnected2D",
                    "QuantSeparableConv1D", "QuantSeparableConv2D"),
    "larq.quantizers": ("ApproxSign", "DoReFa", "MagnitudeAwareSign", "NoOp", "SteHeaviside",
                        "SteSign", "SteTern", "SwishSign", "approx_sign", "dorefa_quantizer",
                        "magnitude_aware_sign", "ste_heaviside", "ste_sign", "ste_tern",
                        "swish_sign"),
    "larq.constraints": ("WeightClip", "weight_clip"),
    "larq.activations": ("hard_tanh", "leaky_tanh"),
    "larq.metrics": ("FlipRatio", "flip_ratio"),
    "larq.optimizers": ("Bop", "CaseOptimizer"),
}

_KERAS = "tf_keras"


def register(cls):
    """Class decorator: register ``cls`` as ``horq_keras>Name`` and as ``Name``."""
    import larq as lq
    import tensorflow as tf

    return lq.utils.register_keras_custom_object(
        tf.keras.utils.register_keras_serializable(package=PACKAGE)(cls)
    )


class _StandIn(type):
    """Metaclass of the stand-ins: a stand-in is a class for Keras (and larq, which
    instantiates a quantizer named by a string); using it imports the real class."""

    def load(cls):
        return getattr(importlib.import_module(cls.home), cls.__name__)

    def __call__(cls, *args, **kwargs):
        return cls.load()(*args, **kwargs)


def _stand_in(module, name):
    def from_config(cls, config, custom_objects=None):
        return cls.load().from_config(config)

    def get_config(self):  # Keras registers only classes that have one; never called
        raise NotImplementedError

    return _StandIn(name, (), {"home": module, "from_config": classmethod(from_config),
                               "get_config": get_config,
                               "__doc__": f"Stand-in for {module}.{name} until it is imported."})


def _add_stand_ins(keras):
    objects = keras.utils.get_custom_objects()
    for module, names in {**OBJECTS, **LARQ_OBJECTS}.items():
        keys = ("{}", f"{PACKAGE}>{{}}") if module in OBJECTS else ("{}",)
        for name in names:
            for key in keys:
                objects.setdefault(key.format(name), _stand_in(module, name))


class _AfterKeras(importlib.abc.MetaPathFinder):
    """Adds the stand-ins right after ``tf_keras`` has been imported (TensorFlow also
    looks it up without importing it: every spec handed out does the same)."""

    def find_spec(self, name, path=None, target=None):
        if name != _KERAS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            _add_stand_ins(module)

        spec.loader.exec_module = exec_then_register
        return spec


def install():
    """Make the package's objects known to Keras (see the module docstring)."""
    if _KERAS in sys.modules:
        _add_stand_ins(sys.modules[_KERAS])
    elif not any(isinstance(finder, _AfterKeras) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterKeras())
