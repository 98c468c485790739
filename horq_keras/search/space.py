"""The search space: ``--space MODEL key=v1/v2/... ...`` expanded into candidates.

Each ``--space`` names a model of the trainer's registry (``horq-keras train
--list-models``) and, for some of its ``--model-arg`` keys, the values to try, separated
by ``/`` (a value may itself hold commas: ``partition=layerwise/v1/2,2,2,2``,
``stage_filters=8,16,32,64``); a key with one value is fixed. The candidates are the
Cartesian product of the values, per ``--space``, in the order given.

Group-Net with one base is direct binarization, where every decomposition gives the same
network (Zhuang et al., CVPR 2019, §3; ``horq_keras.groupnet.resnet``): candidates that
differ only in ``partition`` at ``num_bases=1`` are one candidate (the first listed).

Only parsing here (no TensorFlow): whether a model takes the keys and values is checked
by :func:`horq_keras.search.search.check_candidates` through the trainer's own checks.
"""

import dataclasses
import hashlib
import itertools

__all__ = ["Candidate", "SpaceError", "expand", "parse_space", "varying_keys"]


class SpaceError(ValueError):
    """A bad ``--space``: the message names the option and what it accepts."""


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One point of the space: a registry model and its ``key=value`` arguments (text)."""

    model: str
    args: tuple  # of (key, value text), in the order of the space

    @property
    def model_args(self):
        """The ``--model-arg`` values of ``horq-keras train``."""
        return [f"{key}={value}" for key, value in self.args]

    @property
    def key(self):
        """A stable folder name: the model and a hash of its sorted arguments."""
        text = repr((self.model, sorted(self.args)))
        return f"{self.model}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"

    def label(self, varying=None):
        """``model key=value ...``, only the keys in ``varying`` when given."""
        shown = [f"{k}={v}" for k, v in self.args if varying is None or k in varying]
        return " ".join([self.model, *shown])


def parse_space(tokens):
    """``[MODEL, key=v1/v2, ...]`` -> ``(model, [(key, [values])])``."""
    if not tokens or "=" in tokens[0]:
        raise SpaceError("--space: expected MODEL key=v1/v2 ...; the first word must name a "
                         f"model (horq-keras train --list-models); got {' '.join(tokens)!r}.")
    model, keys, seen = tokens[0], [], set()
    for token in tokens[1:]:
        key, sep, text = token.partition("=")
        values = [v.strip() for v in text.split("/")]
        if not sep or not key or not all(values):
            raise SpaceError(f"--space {model}: expected key=v1/v2/... with non-empty values; "
                             f"got {token!r}.")
        if key in seen:
            raise SpaceError(f"--space {model}: {key} given twice; list its values once, "
                             f"separated by '/'.")
        if len(set(values)) != len(values):
            raise SpaceError(f"--space {model}: {key} lists a value twice: {text!r}.")
        seen.add(key)
        keys.append((key, values))
    return model, keys


def _same_network_key(candidate):
    """What identifies the network built: ``partition`` does not matter at one base."""
    args = dict(candidate.args)
    if args.get("num_bases") == "1":
        args.pop("partition", None)
    return candidate.model, tuple(sorted(args.items()))


def expand(spaces):
    """Every :class:`Candidate` of the parsed ``spaces``, duplicates dropped, in order;
    :class:`SpaceError` when there is none."""
    candidates, seen = [], set()
    for model, keys in spaces:
        names = [key for key, _ in keys]
        for values in itertools.product(*(values for _, values in keys)):
            candidate = Candidate(model, tuple(zip(names, values)))
            identity = _same_network_key(candidate)
            if identity not in seen:
                seen.add(identity)
                candidates.append(candidate)
    if not candidates:
        raise SpaceError("--space: the search space is empty; give at least one --space "
                         "MODEL key=v1/v2 ... (e.g. --space groupnet_resnet18 "
                         "num_bases=1/3/5 activation_bits=1/2 partition=layerwise/v1).")
    return candidates


def varying_keys(candidates):
    """Keys whose value differs between candidates (the columns worth showing)."""
    values = {}
    for candidate in candidates:
        for key, value in candidate.args:
            values.setdefault(key, set()).add(value)
    return {key for key, seen in values.items() if len(seen) > 1}
