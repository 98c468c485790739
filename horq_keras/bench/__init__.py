"""On-device benchmarking of converted models (``horq-keras bench``).

:func:`benchmark` times a ``.tflite`` model, and a float baseline in the same session, on
this machine, on a board over ssh or on an Android phone over adb; see :mod:`.timing`
for the runners, :mod:`.targets` for the targets (:mod:`.registry` picks one),
:mod:`.parse` for the log formats.
"""

from horq_keras.bench.timing import Settings, benchmark
from horq_keras.bench.targets import BenchError, TargetOptions

__all__ = ["benchmark", "Settings", "TargetOptions", "BenchError"]
