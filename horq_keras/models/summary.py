"""``lq.models.summary`` that counts a HORQ layer's order: K binary products per call."""

from unittest import mock

from larq import models as lq_models

from horq_keras.layers.horq import HORQConv2D, HORQDense


class _OrderAwareLayerProfile(lq_models.LayerProfile):
    """larq's layer profile with a HORQ layer's binary MACs multiplied by its order."""

    def __init__(self, layer):
        super().__init__(layer)
        if isinstance(layer, (HORQConv2D, HORQDense)):
            for op in self.op_profiles:
                if op.precision == 1:
                    op.n *= layer.order


def summary(model, print_fn=None, include_macs=True):
    """Print larq's summary table, counting ``order`` binary MACs per HORQ weight.

    Same arguments and output as ``lq.models.summary``; the only difference is that
    a HORQ layer of order K reports K times the binary MACs of one base, which is
    what it runs (K binary convolutions with one shared kernel).
    """
    with mock.patch.object(lq_models, "LayerProfile", _OrderAwareLayerProfile):
        lq_models.summary(model, print_fn=print_fn, include_macs=include_macs)
