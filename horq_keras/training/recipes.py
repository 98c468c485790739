"""The papers' training recipes as named presets; every value can be overridden.

A :class:`Recipe` says how to train: optimizer, learning-rate schedule, batch size,
epochs, and the stages around the main run (a float counterpart trained first, a
teacher to distil from). ``horq-keras train --recipe NAME`` starts from :data:`RECIPES`;
each field is also a command-line option (``--learning-rate 0.01``, ``--lr-milestones
30,40``, ...) that overrides it. The resolved recipe is printed in full at the start
and saved in ``run_config.json``.

Presets:

- ``lenet-mnist`` — this package's MNIST LeNet defaults (``make train``): Adam 2e-3,
  cosine decay to 0, batch 128, 6 epochs.
- ``groupnet-imagenet`` — Group-Net §4.1: SGD with Nesterov momentum 0.9, batch 128,
  weight decay 1e-4; the float counterpart trains first at lr 0.05 divided by 10 at
  fixed epochs, then the binary model starts from its weights at lr 1e-3 (the paper's
  initialisation for binary activations). The epoch count and milestones are this
  package's choice (the paper gives none for every model): 40 epochs, /10 at 30 and 35.
- ``bop`` — larq's Bop (Helwegen et al. 2019) for the binary weights and Adam for every
  other variable, through larq's ``CaseOptimizer`` (Keras legacy optimizers, which
  larq's optimizers need on TF >= 2.11).
- ``two-stage`` — train the float counterpart first, then the binary model initialised
  from its weights (Adam, cosine).
- ``distill`` — a float teacher (``teacher="float"``: trained first; or the path of a
  saved Keras model) and the binary student trained on
  ``(1 - w) * CE(y, student) + w * T^2 * KL(softmax(t/T) || softmax(s/T))`` (Hinton et
  al. 2015; larq-zoo trains QuickNet this way), ``T`` = ``distill_temperature``,
  ``w`` = ``distill_weight``.
"""

import argparse
import dataclasses
import json

from horq_keras.argtypes import int_at_least, non_negative_number, positive_number
from horq_keras.training.cluster import LR_SCALING

__all__ = ["RECIPES", "Recipe", "add_override_options", "resolve"]

_CHOICES = {
    "optimizer": ("adam", "sgd", "bop"),
    "lr_scaling": tuple(LR_SCALING),
    "schedule": ("cosine", "step", "constant"),
    "init": ("scratch", "float"),
}


_POSITIVE = ("learning_rate", "epochs", "batch_size", "distill_temperature", "bop_threshold",
             "bop_gamma")
_NON_NEGATIVE = ("momentum", "weight_decay", "float_epochs", "float_learning_rate",
                 "distill_weight")


def _field(default, help_text):
    return dataclasses.field(default=default, metadata={"help": help_text})


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How to train (see the module docstring); :meth:`check` validates every value."""

    optimizer: str = _field("adam", "adam | sgd | bop (Bop for binary weights, Adam else)")
    learning_rate: float = _field(2e-3, "initial learning rate of the (binary) model")
    schedule: str = _field("cosine", "cosine (to 0 over the run) | step (/10 at "
                           "--lr-milestones) | constant")
    lr_milestones: tuple = _field((), "epochs at which a 'step' schedule divides the "
                                  "learning rate by 10, comma-separated")
    epochs: int = _field(6, "epochs of the (binary) model")
    batch_size: int = _field(128, "samples per batch and replica (global batch = this x "
                             "replicas, see --strategy)")
    lr_scaling: str = _field("linear", "learning rates x (global batch / --batch-size): "
                             "linear | sqrt | none (Goyal et al. 2017's linear rule)")
    momentum: float = _field(0.9, "SGD momentum")
    nesterov: bool = _field(False, "SGD with Nesterov momentum (true | false)")
    weight_decay: float = _field(0.0, "decoupled weight decay (adam, sgd)")
    bop_threshold: float = _field(1e-8, "Bop's flip threshold tau")
    bop_gamma: float = _field(1e-4, "Bop's adaptivity rate gamma")
    init: str = _field("scratch", "scratch | float (train the float counterpart first and "
                       "start from its weights)")
    float_epochs: int = _field(0, "epochs of the float counterpart (init=float or "
                               "teacher=float); 0 = --epochs")
    float_learning_rate: float = _field(0.0, "learning rate of the float counterpart; "
                                        "0 = --learning-rate")
    teacher: str = _field("none", "distillation teacher: none | float (trained first) | "
                          "the path of a saved Keras model")
    distill_temperature: float = _field(2.0, "softmax temperature T of the distillation")
    distill_weight: float = _field(0.5, "weight w of the distillation loss (0..1)")

    def check(self):
        """Raise ``ValueError`` naming the option of the first bad value."""
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"--{_option(name)}: must be one of {', '.join(choices)}; "
                                 f"got {getattr(self, name)!r}.")
        for name in _POSITIVE:
            if not getattr(self, name) > 0:
                raise ValueError(f"--{_option(name)}: must be > 0; got {getattr(self, name)!r}.")
        for name in _NON_NEGATIVE:
            if not getattr(self, name) >= 0:
                raise ValueError(f"--{_option(name)}: must be >= 0; got "
                                 f"{getattr(self, name)!r}.")
        if not 0 <= self.distill_weight <= 1:
            raise ValueError(f"--distill-weight: must be in [0, 1]; got {self.distill_weight!r}.")
        if self.schedule == "step" and not self.lr_milestones:
            raise ValueError("--lr-milestones: a 'step' schedule needs at least one epoch.")
        if self.optimizer == "bop" and self.weight_decay:
            raise ValueError("--weight-decay: not available with --optimizer bop (larq's "
                             "CaseOptimizer takes Keras legacy optimizers).")
        return self

    @property
    def stage1_epochs(self):
        return self.float_epochs or self.epochs

    @property
    def stage1_learning_rate(self):
        return self.float_learning_rate or self.learning_rate

    def to_dict(self):
        return dataclasses.asdict(self)

    def describe(self, name):
        """The recipe in full, for the start of a run."""
        return f"recipe {name}: " + json.dumps(self.to_dict(), sort_keys=False)


#: The presets (see the module docstring).
RECIPES = {
    "lenet-mnist": Recipe(),
    "groupnet-imagenet": Recipe(
        optimizer="sgd", learning_rate=1e-3, schedule="step", lr_milestones=(30, 35),
        epochs=40, batch_size=128, momentum=0.9, nesterov=True, weight_decay=1e-4,
        init="float", float_learning_rate=0.05,
    ),
    "bop": Recipe(optimizer="bop", learning_rate=1e-3),
    "two-stage": Recipe(init="float", learning_rate=1e-3, float_learning_rate=2e-3),
    "distill": Recipe(teacher="float", learning_rate=2e-3),
}


def _option(name):
    return name.replace("_", "-")


def _parse_bool(text):
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"must be true or false; got {text!r}")
    return text.lower() == "true"


def _parse_epochs(text):
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = None
    if values is None or any(value < 1 for value in values) or list(values) != sorted(values):
        raise argparse.ArgumentTypeError(
            f"must be increasing comma-separated epochs >= 1; got {text!r}")
    return values


def _parser_of(field):
    kind = field.type if isinstance(field.type, str) else field.type.__name__
    if kind == "int":
        return int_at_least(1 if field.name in _POSITIVE else 0)
    if kind == "float":
        return positive_number if field.name in _POSITIVE else non_negative_number
    return {"bool": _parse_bool, "tuple": _parse_epochs}.get(kind, str)


def add_override_options(parser):
    """One ``--field-name`` option per :class:`Recipe` field, default None (keep)."""
    group = parser.add_argument_group("recipe values (override the --recipe preset)")
    for field in dataclasses.fields(Recipe):
        group.add_argument(f"--{_option(field.name)}", dest=f"recipe_{field.name}",
                           type=_parser_of(field), default=None,
                           choices=_CHOICES.get(field.name), metavar=field.name.upper()
                           if field.name not in _CHOICES else None,
                           help=field.metadata["help"])


def resolve(name, args):
    """The preset ``name`` with every override given in ``args``; checked."""
    if name not in RECIPES:
        raise ValueError(f"--recipe: unknown recipe {name!r}; choose one of "
                         f"{', '.join(RECIPES)}.")
    overrides = {field.name: getattr(args, f"recipe_{field.name}")
                 for field in dataclasses.fields(Recipe)
                 if getattr(args, f"recipe_{field.name}", None) is not None}
    return dataclasses.replace(RECIPES[name], **overrides).check()
