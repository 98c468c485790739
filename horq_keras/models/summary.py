"""``lq.models.summary`` that counts a HORQ layer's order: K binary products per call.

Built on larq's public profile and table classes (``ModelProfile``, ``LayerProfile``,
``LayersTable``, ``SummaryTable``): :class:`HORQModelProfile` profiles every layer with
:class:`HORQLayerProfile`, nothing of larq is patched.
"""

import tensorflow as tf
from larq import models as lq_models

from horq_keras.layers.horq import HORQConv2D, HORQDense

__all__ = ["HORQLayerProfile", "HORQModelProfile", "summary"]


class HORQLayerProfile(lq_models.LayerProfile):
    """larq's layer profile with a HORQ layer's binary MACs multiplied by its order."""

    def __init__(self, layer):
        super().__init__(layer)
        if isinstance(layer, (HORQConv2D, HORQDense)):
            for op in self.op_profiles:
                if op.precision == 1:
                    op.n *= layer.order


class HORQModelProfile(lq_models.ModelProfile):
    """larq's model profile, every layer (nested models too) as a :class:`HORQLayerProfile`."""

    def __init__(self, model):  # larq's __init__ hard-codes LayerProfile; nothing else differs
        self.name = model.name
        self.layer_profiles = [
            HORQModelProfile(layer) if isinstance(layer, tf.keras.Model)
            else HORQLayerProfile(layer)
            for layer in model.layers
        ]


def summary(model, print_fn=None, include_macs=True):
    """Print larq's summary table, counting ``order`` binary MACs per HORQ weight.

    Same arguments and output as ``lq.models.summary``; the only difference is that
    a HORQ layer of order K reports K times the binary MACs of one base, which is
    what it runs (K binary convolutions with one shared kernel).

    Raises:
        ValueError: the model is not built yet.
    """
    if not model.built:
        raise ValueError("`model` is not built yet: build it (`model.build(input_shape)`, or "
                         "give the first layer an input shape) before its summary.")
    print_fn = print_fn or print
    profile = HORQModelProfile(model)
    print_fn(lq_models.LayersTable(profile.generate_table(), title=f"{model.name} stats").table)
    print_fn(lq_models.SummaryTable(profile.generate_summary(include_macs),
                                    title=f"{model.name} summary").table)
