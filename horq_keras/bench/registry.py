"""Which class runs a ``--target``: the registry of target kinds.

The target modules (:mod:`.local`, :mod:`.ssh`, :mod:`.adb`) import only
:mod:`.targets` (the shared base and parsing); this module imports them, and nothing
imports it back, so there is no cycle.
"""

from horq_keras.bench.adb import ADBTarget
from horq_keras.bench.local import LocalTarget
from horq_keras.bench.ssh import SSHTarget
from horq_keras.bench.targets import parse_target

__all__ = ["TARGET_CLASSES", "make_target"]

#: ``TargetSpec.kind`` -> the class that runs it.
TARGET_CLASSES = {"local": LocalTarget, "ssh": SSHTarget, "adb": ADBTarget}


def make_target(spec, options):
    """The target object for ``spec`` (a ``TargetSpec`` or ``--target`` string)."""
    if isinstance(spec, str):
        spec = parse_target(spec)
    return TARGET_CLASSES[spec.kind](spec, options)
