"""The Group-Net MNIST study's plan, trend checks and campaign (no training here; the
``--smoke`` run is in ``test_benchmarks_smoke.py``)."""

import pathlib

import pytest

from horq_keras.search import runs

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def trainer_study(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import groupnet_mnist_trainer

    return groupnet_mnist_trainer


def _run(decomposition, bases, bits, accuracy):
    return {"decomposition": decomposition, "bases": bases, "activation_bits": bits,
            "test_accuracy": accuracy}


def test_plan_has_one_direct_run_per_bit_width_and_both_decompositions(trainer_study):
    args = trainer_study.parse_args([])
    assert (args.bases, args.activation_bits) == ([1, 3, 5], [1, 2])
    plan = trainer_study.run_plan(args)
    assert len(plan) == 10
    assert plan[:5] == [
        ("direct", "v1", 1, 1),
        ("layer-wise", "layerwise", 3, 1), ("group-wise", "v1", 3, 1),
        ("layer-wise", "layerwise", 5, 1), ("group-wise", "v1", 5, 1),
    ]


def test_smoke_defaults_and_explicit_options(trainer_study):
    args = trainer_study.parse_args(["--smoke", "--epochs", "2"])
    assert (args.epochs, args.bases, args.activation_bits) == (2, [2], [1])
    with pytest.raises(SystemExit):
        trainer_study.parse_args(["--jobs", "0"])


def test_trend_checks(trainer_study):
    args = trainer_study.parse_args(["--activation-bits", "1"])
    runs = [
        _run("direct", 1, 1, 0.80),
        _run("layer-wise", 3, 1, 0.85), _run("group-wise", 3, 1, 0.86),
        _run("layer-wise", 5, 1, 0.84), _run("group-wise", 5, 1, 0.90),
    ]
    checks = dict(trainer_study.trend_checks(runs, args))
    assert checks == {
        "W1A1 layer-wise: more bases → better: 80.00 (K=1) ≤ 85.00 (K=3) ≤ 84.00 (K=5)": False,
        "W1A1 group-wise: more bases → better: 80.00 (K=1) ≤ 86.00 (K=3) ≤ 90.00 (K=5)": True,
        "W1A1, K=3: group-wise 86.00 ≥ layer-wise 85.00": True,
        "W1A1, K=5: group-wise 90.00 ≥ layer-wise 84.00": True,
    }


def test_trainer_study_passes_the_budget_to_horq_keras_train(trainer_study, tmp_path):
    args = trainer_study.parse_args(["--learning-rate", "0.01", "--epochs", "2"])
    argv = trainer_study.train_argv("layerwise", 3, 2, 1, args, tmp_path / "run")
    options = dict(zip(argv[1::2], argv[2::2]))
    assert argv[0] == "train" and options["--model"] == "groupnet_resnet18"
    assert (options["--learning-rate"], options["--epochs"], options["--seed"]) == (
        "0.01", "2", "1")
    assert options["--verify-samples"] == "200" and "--no-convert" not in argv
    model_args = [argv[i + 1] for i, a in enumerate(argv) if a == "--model-arg"]
    assert model_args == ["num_bases=3", "activation_bits=2", "partition=layerwise",
                          "stage_filters=8,16,32,64"]


def _report(val_accuracy, seconds, tie_excused=None):
    return {"history": {"val_accuracy": [0.5, val_accuracy]}, "train_seconds": seconds,
            "tflite_test_accuracy": val_accuracy, "top1_agreement": 1.0, "parity_ok": True,
            "parity_samples": 256,
            "conversion": {"parity": {"rounding_floor": 0.25, "strict_within": 0.9,
                                      "tie_excused": tie_excused}}}


def test_trainer_study_reuses_finished_runs_and_reports_last_epoch(trainer_study, tmp_path,
                                                                  monkeypatch):
    """A run whose report.json exists in --work-dir is read, not retrained; the test
    accuracy is the last epoch's validation accuracy, averaged over seeds."""
    import json

    work, out = tmp_path / "work", tmp_path / "out"
    argv = ["--work-dir", str(work), "--output-dir", str(out), "--bases", "1", "2",
            "--activation-bits", "1", "--seeds", "0", "1", "--name", "w1a1"]
    args = trainer_study.parse_args(argv)
    reports = {}
    for label, partition, bases, bits in trainer_study.run_plan(args):
        for seed in args.seeds:
            run = work / f"{partition}_k{bases}_a{bits}_s{seed}"
            reports[run] = _report(0.9 + bases / 100 + seed / 100, 60.0, tie_excused=seed)
    missing = run  # the last run has no report yet: it is the only one trained
    for run, report in reports.items():
        if run != missing:
            run.mkdir(parents=True)
            (run / "report.json").write_text(json.dumps(report))
    trained = []

    def train(command, **kwargs):
        out = pathlib.Path(command[command.index("--output-dir") + 1])
        trained.append(out)
        out.mkdir(parents=True)
        (out / "report.json").write_text(json.dumps(reports[out]))
        return 0

    monkeypatch.setattr(runs.subprocess, "call", train)
    assert trainer_study.main(argv) == 0
    assert trained == [missing]
    assert sorted(p.name for p in out.iterdir()) == ["w1a1.json", "w1a1.md", "w1a1.png"]
    data = json.loads((out / "w1a1.json").read_text())
    direct = data["runs"][0]
    assert (direct["decomposition"], direct["bases"]) == ("direct", 1)
    assert direct["accuracies"] == pytest.approx([0.91, 0.92])
    assert direct["test_accuracy"] == pytest.approx(0.915)
    assert direct["std"] == pytest.approx(0.00707, abs=1e-5)
    assert direct["train_seconds"] == 120.0
    assert [run["bases"] for run in data["runs"]] == [1, 2, 2]
    assert direct["rounding_floor"] == [0.25, 0.25] and direct["parity_samples"] == [256, 256]
    assert direct["tie_excused"] == [0, 1]
    markdown = (out / "w1a1.md").read_text()
    assert "first 256 test images" in markdown
    assert "6 of 6 runs passed, 6 of them only with the rounding floor or threshold ties" in markdown
    assert "floor 0.25, 1 tie sample(s) excused: W1A1 K=1 direct" in markdown
    assert "floor 0.25: W1A1 K=1 direct" in markdown  # seed 0: no tie excused
    assert "0 failed (none)" in markdown
    assert "Training time, all runs: 6.0 min" in markdown
    assert "1 of 6 runs trained, 1 at a time" in markdown


def test_trainer_study_stops_on_a_failed_run(trainer_study, tmp_path, monkeypatch):
    args = trainer_study.parse_args(["--bases", "1", "--activation-bits", "1", "--seeds", "0"])
    monkeypatch.setattr(runs.subprocess, "call", lambda *a, **k: 2)
    with pytest.raises(SystemExit, match="exit code 2"):
        trainer_study.run_campaign(args, tmp_path)
