"""Every model builder of the package by name, with its arguments typed from its signature.

``horq-keras train --model NAME --model-arg key=value`` looks ``NAME`` up in
:data:`MODELS`; each ``key`` must be a keyword-only argument of the builder (or of the
builder it forwards ``**kwargs`` to), and ``value`` is parsed with the type of that
argument's default: ``int``, ``float``, ``bool`` (``true``/``false``), ``str``; a
string argument also takes comma-separated integers, a tuple (Group-Net partition sizes).
``input_shape`` and ``num_classes`` come from the data, never from ``--model-arg``.
"""

import dataclasses
import inspect
import re

from horq_keras import groupnet
from horq_keras.models import horq_lenet, horq_resnet18

__all__ = ["MODELS", "ModelArgError", "ModelEntry", "build", "describe", "parse_model_args"]

#: Arguments the trainer sets from the data or itself.
RESERVED = ("input_shape", "num_classes", "include_top", "name")

_INT_TUPLE = re.compile(r"^\d+(,\d+)+$")


class ModelArgError(ValueError):
    """A bad ``--model`` / ``--model-arg``: the message names the option."""


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A registered builder.

    ``forwards_to``: the builders whose keyword-only arguments ``builder`` accepts
    through ``**kwargs``, less ``fixed`` (the ones it sets itself). ``float_args``: the arguments that build the float counterpart
    (same layer names and weight shapes, no quantization where possible), which
    initialises the binary model in two-stage training and serves as a distillation
    teacher.
    """

    builder: callable
    summary: str
    forwards_to: tuple = ()
    fixed: tuple = ()
    float_args: dict = dataclasses.field(default_factory=dict)

    def arguments(self):
        """``{name: default}`` of every keyword-only argument the builder takes."""
        arguments = {}
        for function in (self.builder, *self.forwards_to):
            for parameter in inspect.signature(function).parameters.values():
                if (parameter.kind is inspect.Parameter.KEYWORD_ONLY
                        and parameter.name not in (*RESERVED, *self.fixed)):
                    arguments.setdefault(parameter.name, parameter.default)
        return arguments


_FLOAT = {"variant": "float"}
_GROUPNET_FLOAT = {"activation_bits": 32}


def _groupnet(builder, summary, forwards_to=(), fixed=()):
    return ModelEntry(builder, summary, forwards_to, fixed, _GROUPNET_FLOAT)


_RESNET = (groupnet.groupnet_resnet,)
_RESNET_FIXED = ("stage_blocks", "bottleneck")
_RESNET18 = (groupnet.groupnet_resnet18, *_RESNET)
_ALEXNET = (groupnet.groupnet_alexnet,)

#: Every builder of the package. Float baselines are the ``variant="float"`` /
#: ``activation_bits=32`` settings of these builders (see ``float_args``).
MODELS = {
    "horq_lenet": ModelEntry(horq_lenet, "HORQ paper's MNIST LeNet (variant: float | "
                             "binary_weights | horq)", float_args=_FLOAT),
    "horq_resnet18": ModelEntry(horq_resnet18, "ResNet-18 with HORQConv2D of order K in the "
                                "binary body (variant: float | binary_weights | horq)",
                                float_args=_FLOAT),
    "groupnet_resnet18": _groupnet(groupnet.groupnet_resnet18, "Group-Net ResNet-18",
                                   _RESNET, _RESNET_FIXED),
    "groupnet_resnet34": _groupnet(groupnet.groupnet_resnet34, "Group-Net ResNet-34",
                                   _RESNET, _RESNET_FIXED),
    "groupnet_resnet50": _groupnet(groupnet.groupnet_resnet50, "Group-Net ResNet-50",
                                   _RESNET, _RESNET_FIXED),
    "layerwise_resnet18": _groupnet(groupnet.layerwise_resnet18, "ResNet-18, every binary "
                                    "conv decomposed alone", _RESNET18,
                                    (*_RESNET_FIXED, "partition")),
    "binary_resnet18": _groupnet(groupnet.binary_resnet18, "directly binarized ResNet-18",
                                 _RESNET18, (*_RESNET_FIXED, "num_bases", "partition")),
    "groupnet_alexnet": _groupnet(groupnet.groupnet_alexnet, "Group-Net AlexNet"),
    "layerwise_alexnet": _groupnet(groupnet.layerwise_alexnet, "AlexNet, every binary layer "
                                   "decomposed alone", _ALEXNET, ("partition",)),
    "binary_alexnet": _groupnet(groupnet.binary_alexnet, "directly binarized AlexNet",
                                _ALEXNET, ("num_bases", "partition")),
}


def entry(name):
    """The :class:`ModelEntry` called ``name``; ``ModelArgError`` naming ``--model``."""
    if name not in MODELS:
        raise ModelArgError(f"--model: unknown model {name!r}; choose one of "
                            f"{', '.join(MODELS)} (see --list-models).")
    return MODELS[name]


def _parse_value(key, text, default):
    """``text`` parsed as the type of ``default``; ``ModelArgError`` naming ``key``."""
    def fail(expected):
        raise ModelArgError(f"--model-arg {key}: must be {expected}; got {text!r}.")

    if isinstance(default, bool):
        if text.lower() not in ("true", "false"):
            fail("true or false")
        return text.lower() == "true"
    if isinstance(default, int):
        if not re.fullmatch(r"[+-]?\d+", text):
            fail("an integer")
        return int(text)
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            fail("a number")
    if isinstance(default, tuple):
        if not _INT_TUPLE.fullmatch(text) and not text.isdigit():
            fail("comma-separated integers")
        return tuple(int(part) for part in text.split(","))
    if _INT_TUPLE.fullmatch(text):
        return tuple(int(part) for part in text.split(","))
    return text


def parse_model_args(name, pairs):
    """``["key=value", ...]`` -> ``{key: typed value}`` for model ``name``; a key given
    twice must have the same value."""
    arguments = entry(name).arguments()
    parsed = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ModelArgError(f"--model-arg: expected key=value; got {pair!r}.")
        if key in RESERVED:
            raise ModelArgError(f"--model-arg {key}: set by the trainer from the data "
                                f"(use --image-size for the input size).")
        if key not in arguments:
            raise ModelArgError(f"--model-arg {key}: {name} takes no argument {key!r}; "
                                f"it takes {', '.join(sorted(arguments))}.")
        value = _parse_value(key, text, arguments[key])
        if key in parsed and parsed[key] != value:
            raise ModelArgError(f"--model-arg {key}: given twice with different values, "
                                f"{parsed[key]!r} and {value!r}; give one.")
        parsed[key] = value
    return parsed


def build(name, model_args, *, input_shape, num_classes, float_counterpart=False):
    """Build model ``name``; a builder's ``ValueError`` becomes a ``ModelArgError``."""
    model_entry = entry(name)
    arguments = {**model_args, **(model_entry.float_args if float_counterpart else {})}
    try:
        return model_entry.builder(**arguments, input_shape=tuple(input_shape),
                                   num_classes=num_classes)
    except (ValueError, TypeError) as error:
        raise ModelArgError(f"--model {name} with {arguments or 'its defaults'} and input "
                            f"shape {tuple(input_shape)}: {error}") from error


def describe():
    """The registry as text: one line per model, then its arguments and defaults."""
    lines = []
    for name, model_entry in MODELS.items():
        lines.append(f"{name}: {model_entry.summary}")
        arguments = ", ".join(f"{key}={default!r}" for key, default in
                              model_entry.arguments().items())
        lines.append(f"    --model-arg {arguments}")
    return "\n".join(lines)


