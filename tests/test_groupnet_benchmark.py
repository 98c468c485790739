"""The Group-Net MNIST benchmark's plan and trend checks (no training here; the
``--smoke`` run is in ``test_benchmarks_smoke.py``)."""

import pathlib

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def groupnet_mnist(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import groupnet_mnist

    return groupnet_mnist


def _run(decomposition, bases, bits, accuracy):
    return {"decomposition": decomposition, "bases": bases, "activation_bits": bits,
            "test_accuracy": accuracy}


def test_plan_has_one_direct_run_per_bit_width_and_both_decompositions(groupnet_mnist):
    args = groupnet_mnist.parse_args([])
    assert (args.bases, args.activation_bits) == ([1, 3, 5], [1, 2])
    plan = groupnet_mnist.run_plan(args)
    assert len(plan) == 10
    assert plan[:5] == [
        ("direct", "v1", 1, 1),
        ("layer-wise", "layerwise", 3, 1), ("group-wise", "v1", 3, 1),
        ("layer-wise", "layerwise", 5, 1), ("group-wise", "v1", 5, 1),
    ]


def test_smoke_defaults_and_explicit_options(groupnet_mnist):
    args = groupnet_mnist.parse_args(["--smoke", "--steps", "2"])
    assert (args.steps, args.bases, args.activation_bits) == (2, [1, 2], [1])
    with pytest.raises(SystemExit):
        groupnet_mnist.parse_args(["--batch-size", "0"])


def test_trend_checks(groupnet_mnist):
    args = groupnet_mnist.parse_args(["--activation-bits", "1"])
    runs = [
        _run("direct", 1, 1, 0.80),
        _run("layer-wise", 3, 1, 0.85), _run("group-wise", 3, 1, 0.86),
        _run("layer-wise", 5, 1, 0.84), _run("group-wise", 5, 1, 0.90),
    ]
    checks = dict(groupnet_mnist.trend_checks(runs, args))
    assert checks == {
        "W1A1 layer-wise: more bases → better: 80.00 (K=1) ≤ 85.00 (K=3) ≤ 84.00 (K=5)": False,
        "W1A1 group-wise: more bases → better: 80.00 (K=1) ≤ 86.00 (K=3) ≤ 90.00 (K=5)": True,
        "W1A1, K=3: group-wise 86.00 ≥ layer-wise 85.00": True,
        "W1A1, K=5: group-wise 90.00 ≥ layer-wise 84.00": True,
    }
