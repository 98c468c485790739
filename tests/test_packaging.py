"""The distributions users install: the wheel holds every module of the package (found,
not listed) and nothing else; the sdist and the wheel carry the README and the licence."""

import pathlib
import subprocess
import sys
import tarfile
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _modules(folder, package):
    """``package/relative/path.py`` of every module under ``ROOT/folder``."""
    return {f"{package}/{path.relative_to(ROOT / folder).as_posix()}"
            for path in (ROOT / folder).rglob("*.py")}


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,), (sdist,) = out.glob("*.whl"), out.glob("*.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        wheel_files = set(archive.namelist())
        metadata = next(archive.read(n).decode() for n in wheel_files
                        if n.endswith(".dist-info/METADATA"))
    with tarfile.open(sdist) as archive:
        sdist_files = {name.partition("/")[2] for name in archive.getnames()}
    return wheel_files, metadata, sdist_files


def test_the_wheel_holds_every_module_and_only_the_package(dists):
    wheel_files, _, _ = dists
    modules = {name for name in wheel_files if name.endswith(".py")}
    expected = _modules("horq_keras", "horq_keras") | _modules("converters",
                                                               "horq_keras/converters")
    assert modules == expected
    assert "horq_keras/training/train.py" in modules  # the subpackage once forgotten
    assert "horq_keras/tflite/arm_cost_model.json" in wheel_files  # the search's cost model
    tops = {name.split("/")[0] for name in wheel_files}
    assert tops == {"horq_keras", "horq_keras-0.1.0.dist-info"}, tops


def test_readme_and_licence_in_both(dists):
    wheel_files, metadata, sdist_files = dists
    assert "horq_keras-0.1.0.dist-info/LICENSE" in wheel_files
    assert "License: Apache-2.0" in metadata and "## The two commands" in metadata
    assert {"README.md", "LICENSE", "setup.py", "setup.cfg"} <= sdist_files
    assert not {name for name in sdist_files if name.startswith("benchmarks/")}


def test_version_is_the_package_version():
    import horq_keras

    result = subprocess.run([sys.executable, "-m", "horq_keras.cli", "--version"],
                            capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == f"horq-keras {horq_keras.__version__}"
