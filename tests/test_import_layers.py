"""The package's layers import only downward, each folder is one layer, and the TFLite
tools stay Keras-free.

Layers (docs/layout.md), each importing only from the ones below it:

0. base — argument checks, exit codes, atomic output files and the Keras 2 bootstrap,
   importing nothing of the package;
1. core — the paper code: quantizers, layers, groupnet, models, datasets;
2. tflite — Keras-free TFLite tools (flatbuffers, op and MAC counts, runner);
3. converters — conversion, lowering checks, k-bit, int8, verification, reports;
4. applications — training, bench, the CLI, ``benchmarks/``,
   ``android_demo/export_assets.py``.

Every subfolder of the package holds one layer; the package's top folder holds the base
modules, the core's public modules and the ``horq-keras`` entry point (``cli``).

Every ``import`` statement counts, also those inside functions (lazy imports are
still dependencies).
"""

import ast
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

#: Module name prefix -> layer; the longest matching prefix wins.
LAYERS = {
    "horq_keras._checks": 0,
    "horq_keras._keras_compat": 0,
    "horq_keras.argtypes": 0,
    "horq_keras.exit_status": 0,
    "horq_keras.files": 0,
    "horq_keras": 1,
    "horq_keras.quantizers": 1,
    "horq_keras.layers": 1,
    "horq_keras.groupnet": 1,
    "horq_keras.models": 1,
    "horq_keras.datasets": 1,
    "horq_keras.tflite": 2,
    "horq_keras.converters": 3,
    "horq_keras.training": 4,
    "horq_keras.bench": 4,
    "horq_keras.search": 4,
    "horq_keras.cli": 4,
    "benchmarks": 4,
    "android_demo": 4,
}
LAYER_NAMES = ["base", "core", "tflite", "converters", "applications"]
#: Third-party packages the Keras-free layer must not import.
HEAVY = ("tensorflow", "tf_keras", "keras", "larq", "larq_compute_engine")


def _layer(module):
    matches = [prefix for prefix in LAYERS
               if module == prefix or module.startswith(prefix + ".")]
    return LAYERS[max(matches, key=len)] if matches else None


def _sources():
    """``(module name, path)`` of every file of the package and of the applications."""
    for path in sorted((ROOT / "horq_keras").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        yield ".".join(p for p in parts if p != "__init__"), path
    for path in sorted((ROOT / "converters").rglob("*.py")):
        parts = ("horq_keras", *path.relative_to(ROOT).with_suffix("").parts)
        yield ".".join(p for p in parts if p != "__init__"), path
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        yield f"benchmarks.{path.stem}", path
    yield "android_demo.export_assets", ROOT / "android_demo" / "export_assets.py"


def _imports(module, path):
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def test_every_module_has_a_layer():
    missing = [module for module, _ in _sources() if _layer(module) is None]
    assert not missing, f"add these modules to LAYERS: {missing}"


def test_no_upward_import():
    upward = []
    for module, path in _sources():
        own = _layer(module)
        for name in _imports(module, path):
            target = _layer(name) if name.startswith("horq_keras") else None
            if target is not None and target > own:
                upward.append(f"{path.relative_to(ROOT)} ({LAYER_NAMES[own]}) imports {name} "
                              f"({LAYER_NAMES[target]})")
    assert not upward, "imports against the layers:\n" + "\n".join(sorted(set(upward)))


def test_each_folder_is_one_layer():
    layers_of = {}
    for module, path in _sources():
        if path.is_relative_to(ROOT / "horq_keras") or path.is_relative_to(ROOT / "converters"):
            layers_of.setdefault(path.parent.relative_to(ROOT), {})[module] = _layer(module)
    top = layers_of.pop(pathlib.Path("horq_keras"))
    mixed = {str(folder): modules for folder, modules in layers_of.items()
             if len(set(modules.values())) > 1}
    assert not mixed, f"folders holding modules of several layers: {mixed}"
    assert {m for m, layer in top.items() if layer > 1} == {"horq_keras.cli"}, top


def test_docstrings_name_modules_that_exist():
    """Every ``:mod:`` reference to the package (absolute or relative) names a module."""
    modules = dict(_sources())
    stale = []
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for ref in re.findall(r":mod:`~?([^`]+)`", path.read_text(encoding="utf-8")):
            name = ref.lstrip(".")
            if len(name) < len(ref):  # relative to the module's package
                anchor = package.split(".")[: len(package.split(".")) - (len(ref) - len(name)) + 1]
                name = ".".join(anchor + ([name] if name else []))
            if name.startswith("horq_keras") and name not in modules:
                stale.append(f"{path.relative_to(ROOT)}: {ref}")
    assert not stale, "references to missing modules: " + ", ".join(stale)


def test_the_layer_test_sees_an_upward_import(tmp_path):
    """The walk itself: a core module importing the converters is flagged."""
    path = tmp_path / "probe.py"
    path.write_text("def f():\n    from horq_keras.converters import convert\n")
    names = list(_imports("horq_keras.layers.probe", path))
    assert "horq_keras.converters.convert" in names
    assert _layer("horq_keras.converters.convert") > _layer("horq_keras.layers.probe")


@pytest.mark.parametrize("module, path", [
    (module, path) for module, path in _sources() if _layer(module) == 2])
def test_tflite_tools_import_no_keras(module, path):
    heavy = [name for name in _imports(module, path) if name.split(".")[0] in HEAVY]
    assert not heavy, f"{path.relative_to(ROOT)} imports {heavy}"


def test_tflite_tools_load_without_tensorflow():
    code = ("import sys, horq_keras.tflite, horq_keras.tflite.runner\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_no_import_cycle():
    """No module imports itself back through others (for example a registry of
    targets that the targets import again)."""
    modules = dict(_sources())
    graph = {module: {name for name in _imports(module, path) if name in modules} - {module}
             for module, path in modules.items()}
    for module, path in modules.items():  # a package imports its own __init__ implicitly
        graph[module] -= {m for m in graph[module] if module.startswith(m + ".")}
    cycles = []
    state = {}

    def visit(module, stack):
        state[module] = "open"
        for name in sorted(graph[module]):
            if state.get(name) == "open":
                cycles.append(" -> ".join(stack[stack.index(name):] + [name]))
            elif name not in state:
                visit(name, stack + [name])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
