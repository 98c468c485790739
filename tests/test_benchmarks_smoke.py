"""Every benchmark script runs end to end in its ``--smoke`` configuration, and writes its
Markdown/JSON/PNG results (with provenance) atomically into ``--output-dir``.

The scripts are imported and their ``main(argv)`` called in this process (one TensorFlow
import for all of them); outputs go to ``tmp_path`` so the committed results in
``benchmarks/results/`` are never touched.
"""

import importlib
import json
import pathlib
import re
import subprocess

import horq_keras  # noqa: F401  (Keras 2 for larq before TensorFlow is used)
import larq as lq
import pytest
import tensorflow as tf

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"

#: Every benchmark script (``benchmarks/<name>.py``; ``_*.py`` are shared helpers). Each
#: writes ``<name>.md/.json/.png``.
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))

#: Scripts whose smoke run starts worker processes (minutes): deselected by -m "not slow".
SLOW_SCRIPTS = {"distributed_throughput"}

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def benchmarks_path(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.chdir(BENCHMARKS.parent)  # load_mnist finds ./data/mnist


def _import(name):
    return importlib.import_module(name)


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=[pytest.mark.slow, pytest.mark.timeout(1800)])
    if name in SLOW_SCRIPTS else name for name in SCRIPTS])
def test_smoke_run_writes_results(name, tmp_path, benchmarks_path):
    if name in ("arm_emulated", "arm_cost_model") and _import("_arm_emulator").missing():
        pytest.skip(_import("_arm_emulator").missing())
    module = _import(name)
    assert module.main(["--smoke", "--output-dir", str(tmp_path)]) in (0, None)

    markdown = (tmp_path / f"{name}.md").read_text(encoding="utf-8")
    assert f"- Command: `python benchmarks/{name}.py --smoke --output-dir {tmp_path}`" in markdown
    assert re.search(r"- Machine: .+, \d+ logical cores", markdown)
    assert "tensorflow 2.16.2" in markdown and "larq 0.14.0" in markdown

    data = json.loads((tmp_path / f"{name}.json").read_text(encoding="utf-8"))
    assert data["command"].endswith("--smoke --output-dir " + str(tmp_path))
    assert data["provenance"]["machine"]["logical_cores"] >= 1

    assert (tmp_path / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no temporary or progress files remain


def test_table1_records_a_curve_point_per_epoch(tmp_path, benchmarks_path):
    table1 = _import("horq_table1")
    table1.main(["--smoke", "--variants", "float", "xnor", "--epochs", "2",
                 "--output-dir", str(tmp_path)])
    data = json.loads((tmp_path / "horq_table1.json").read_text(encoding="utf-8"))
    assert [run["variant"] for run in data["runs"]] == ["float", "xnor"]
    for run in data["runs"]:
        assert len(run["test_accuracy"]) == len(run["test_loss"]) == 2
        assert run["test_error_percent"] == pytest.approx(100 * (1 - run["test_accuracy"][-1]))
    assert data["summary"]["xnor"]["std"] is None  # one seed: no standard deviation


def test_table1_resume_skips_finished_runs(tmp_path, benchmarks_path, monkeypatch):
    table1 = _import("horq_table1")
    argv = ["--smoke", "--variants", "float", "--output-dir", str(tmp_path)]
    finished = {"variant": "float", "seed": 0, "train_loss": [1.0], "test_accuracy": [0.5],
                "test_loss": [1.5], "test_error_percent": 50.0, "wall_s": 1.0}
    config = table1._config(table1.parse_args(argv))
    (tmp_path / ".horq_table1.progress.json").write_text(
        json.dumps({"config": config, "runs": [finished]}))
    monkeypatch.setattr(table1, "train_run", lambda *args: pytest.fail("run not skipped"))
    table1.main(argv + ["--resume"])
    data = json.loads((tmp_path / "horq_table1.json").read_text(encoding="utf-8"))
    assert data["runs"] == [finished]

    (tmp_path / ".horq_table1.progress.json").write_text(
        json.dumps({"config": {**config, "epochs": 99}, "runs": [finished]}))
    with pytest.raises(SystemExit, match="epochs"):
        table1.main(argv + ["--resume"])


def test_table1_goal_verdict(benchmarks_path):
    table1 = _import("horq_table1")
    assert "**met**" in table1.goal_verdict({"horq2": {"mean": 1.2}, "xnor": {"mean": 1.5}})
    assert "NOT met" in table1.goal_verdict({"horq2": {"mean": 1.3}, "xnor": {"mean": 1.5}})
    assert "NOT met" in table1.goal_verdict({"horq2": {"mean": 1.2}, "xnor": {"mean": 1.1}})


def test_theoretical_speedup_matches_xnor_net(benchmarks_path):
    speedup = _import("horq_speedup").theoretical_speedup
    # XNOR-Net §3.3: 62.27x for c = 256 channels and a 3x3 filter.
    assert speedup(1, 256, 3) == pytest.approx(62.27, abs=0.01)
    for order in (2, 3, 4):
        assert speedup(order, 256, 3) == pytest.approx(speedup(1, 256, 3) / order)
    # More channels or a larger filter: more binary work per float scaling, higher speed-up.
    assert speedup(1, 64, 3) < speedup(1, 512, 3) < 64
    assert speedup(1, 256, 1) < speedup(1, 256, 7) < 64


def test_speedup_conversion_checks_binary_op_count(benchmarks_path, monkeypatch):
    speedup = _import("horq_speedup")
    from horq_keras.tflite.graph import op_counts

    assert op_counts(speedup.convert("horq3", 32, 3, 6))["LceBconv2d"] == 3
    assert op_counts(speedup.convert("float", 32, 3, 6))["CONV_2D"] == 1
    # A model that does not convert to K binary convolutions is refused, not timed.
    monkeypatch.setattr(speedup, "_layer", lambda kind, channels, size: tf.keras.layers.Conv2D(
        channels, size, padding="same"))
    with pytest.raises(RuntimeError, match="0 LceBconv2d ops, expected 2"):
        speedup.convert("horq2", 32, 3, 6)


def test_larq_xnor_lenet_is_horq_lenet_with_binary_inputs(benchmarks_path):
    training_cost = _import("training_cost")
    from horq_keras.models import horq_lenet

    xnor = training_cost.larq_xnor_lenet()
    reference = horq_lenet(variant="horq", order=1)
    assert [layer.name for layer in xnor.layers] == [layer.name for layer in reference.layers]
    assert [w.shape for w in xnor.weights] == [w.shape for w in reference.weights]
    for name in ("conv2", "fc3"):
        layer = xnor.get_layer(name)
        assert type(layer) is lq.layers.QuantConv2D
        assert layer.input_quantizer.__class__ is lq.quantizers.SteSign
        assert layer.kernel_quantizer.__class__ is lq.quantizers.MagnitudeAwareSign
        assert isinstance(layer.kernel_constraint, lq.constraints.WeightClip)
    x = tf.random.normal([2, 28, 28, 1])
    assert xnor(x).shape == (2, 10)


def test_readme_lists_every_benchmark_and_links_exist():
    readme = (BENCHMARKS / "README.md").read_text(encoding="utf-8")
    scripts = sorted(p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))
    for script in scripts:
        assert f"benchmarks/{script}" in readme, f"{script} missing from benchmarks/README.md"
    for link in re.findall(r"\]\((results/[^)#]+)", readme):
        assert (BENCHMARKS / link).exists(), f"benchmarks/README.md links to missing {link}"


def test_provenance_is_dirty_for_code_changes_not_for_earlier_results(tmp_path, benchmarks_path,
                                                                      monkeypatch):
    provenance = _import("_provenance")
    repo = tmp_path / "repo"
    (repo / "benchmarks" / "results").mkdir(parents=True)
    (repo / "benchmarks" / "results" / "a.md").write_text("old result\n")
    (repo / "code.py").write_text("x = 1\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True, timeout=30)
    subprocess.run([*git, "add", "."], check=True, timeout=30)
    subprocess.run([*git, "commit", "-qm", "c"], check=True, timeout=30)
    monkeypatch.setattr(provenance, "_REPOSITORY", str(repo))
    assert not provenance._git_commit().endswith("+dirty")
    (repo / "benchmarks" / "results" / "a.md").write_text("new result\n")
    assert not provenance._git_commit().endswith("+dirty")
    (repo / "code.py").write_text("x = 2\n")
    assert provenance._git_commit().endswith("+dirty")
