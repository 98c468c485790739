"""Package discovery (metadata: setup.cfg).

Every package under ``horq_keras/`` is found, and every package under the top-level
``converters/`` folder is installed as ``horq_keras.converters`` (the repository's
declared layout keeps the converters beside the package), so a new subpackage of
either is installed without being listed anywhere.
"""

from setuptools import find_packages, setup

CONVERTERS = "horq_keras.converters"

setup(
    packages=[*find_packages(include=["horq_keras", "horq_keras.*"]),
              *(CONVERTERS + name.removeprefix("converters")
                for name in find_packages(include=["converters", "converters.*"]))],
    package_dir={CONVERTERS: "converters"},
)
