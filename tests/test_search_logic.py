"""The pure parts of ``horq-keras search``: the Pareto front and the choice under a budget,
the rungs and survivors of successive halving, the space, the budget option and the cost
model's least-squares fit, against hand-written expectations."""

import argparse

import numpy as np
import pytest

from horq_keras.search.cli import cost_budget
from horq_keras.search.halving import rung_epochs, survivors
from horq_keras.search.pareto import BudgetError, choose, dominates, pareto_front
from horq_keras.search.space import SpaceError, expand, parse_space, varying_keys
from horq_keras.tflite.arm_cost import FEATURES, CostModel


def point(label, accuracy, instructions, **extra):
    return {"label": label, "accuracy": accuracy, "instructions": instructions, **extra}


A, B, C, D = (point("A", 0.90, 10), point("B", 0.80, 5), point("C", 0.85, 12),
              point("D", 0.90, 10))
FAILED = {"label": "F", "accuracy": None}


def test_front_keeps_the_non_dominated_cheapest_first():
    assert dominates(A, C) and not dominates(C, A)
    assert not dominates(A, D) and not dominates(D, A)  # equal points: neither dominates
    assert not dominates(A, B) and not dominates(B, A)
    assert pareto_front([C, A, FAILED, B, D]) == [B, A, D]


def test_choice_is_the_most_accurate_under_the_budget():
    points = [C, A, B, FAILED]
    assert choose(points, 10) is A
    assert choose(points, 9.99) is B
    assert choose(points, 100) is A  # C costs more and is less accurate
    assert choose(points, 12, eligible=lambda p: p["label"] != "A") is C
    with pytest.raises(BudgetError, match=r"--max-cost: no candidate costs at most 4 .*B, "
                                          r"costs 5"):
        choose(points, 4)
    assert choose([point("x", 0.5, 3), point("y", 0.5, 2)], 10)["label"] == "y"


@pytest.mark.parametrize("seed", range(5))
def test_a_dominated_point_is_never_chosen(seed):
    rng = np.random.default_rng(seed)
    points = [point(str(i), float(a), float(c)) for i, (a, c) in
              enumerate(zip(rng.choice([0.5, 0.6, 0.7, 0.8], 12), rng.integers(1, 8, 12)))]
    front = pareto_front(points)
    for budget in sorted({p["instructions"] for p in points}):
        chosen = choose(points, budget)
        assert any(chosen is p for p in front)
        assert not any(dominates(p, chosen) for p in points)
        assert chosen["accuracy"] == max(p["accuracy"] for p in points
                                         if p["instructions"] <= budget)


def test_rungs():
    assert rung_epochs(1, 8, 2) == [1, 2, 4, 8]
    assert rung_epochs(1, 6, 2) == [1, 2, 4, 6]
    assert rung_epochs(1, 9, 3) == [1, 3, 9]
    assert rung_epochs(3, 3, 2) == [3]
    assert rung_epochs(5, 3, 2) == [3]
    with pytest.raises(ValueError, match="eta >= 2"):
        rung_epochs(1, 4, 1)


def test_survivors_are_the_top_fraction_and_the_front():
    cheap_bad = point("cheap", 0.50, 1)
    mid = point("mid", 0.70, 5)
    dominated = point("dominated", 0.60, 6)
    best = point("best", 0.90, 20)
    second = point("second", 0.85, 30)  # dominated by best, but in the top half
    worse = point("worse", 0.55, 25)
    points = [cheap_bad, mid, dominated, best, second, worse, FAILED]
    kept = survivors(points, eta=2)
    # top ceil(6 / 2) = 3 by accuracy: best, second, mid; front: cheap, mid, best.
    assert [p["label"] for p in kept] == ["cheap", "mid", "best", "second"]
    assert [p["label"] for p in survivors(points, eta=6)] == ["cheap", "mid", "best"]


def test_space_is_the_product_of_the_values():
    spaces = [parse_space(["groupnet_resnet18", "num_bases=1/3", "partition=layerwise/v1/2,2,2,2",
                           "stage_filters=8,16,32,64"]),
              parse_space(["horq_lenet", "order=1/2"])]
    candidates = expand(spaces)
    # num_bases=1: every partition is the same network, kept once (the first listed).
    assert [c.label() for c in candidates] == [
        "groupnet_resnet18 num_bases=1 partition=layerwise stage_filters=8,16,32,64",
        "groupnet_resnet18 num_bases=3 partition=layerwise stage_filters=8,16,32,64",
        "groupnet_resnet18 num_bases=3 partition=v1 stage_filters=8,16,32,64",
        "groupnet_resnet18 num_bases=3 partition=2,2,2,2 stage_filters=8,16,32,64",
        "horq_lenet order=1", "horq_lenet order=2"]
    assert candidates[1].model_args == ["num_bases=3", "partition=layerwise",
                                        "stage_filters=8,16,32,64"]
    assert len({c.key for c in candidates}) == len(candidates)
    assert varying_keys(candidates) == {"num_bases", "partition", "order"}


@pytest.mark.parametrize("tokens, message", [
    (["num_bases=1/2"], "the first word must name a model"),
    (["groupnet_resnet18", "num_bases"], "expected key=v1/v2"),
    (["groupnet_resnet18", "num_bases=1//2"], "non-empty values"),
    (["groupnet_resnet18", "num_bases=1", "num_bases=2"], "given twice"),
    (["groupnet_resnet18", "num_bases=1/1"], "lists a value twice"),
])
def test_bad_space(tokens, message):
    with pytest.raises(SpaceError, match=message):
        parse_space(tokens)


def test_empty_space():
    with pytest.raises(SpaceError, match="search space is empty"):
        expand([])


def test_budget_units():
    assert cost_budget("5ms") == ("ms", 5.0)
    assert cost_budget("2.5") == ("ms", 2.5)
    assert cost_budget("40M") == ("instructions", 40e6)
    assert cost_budget("0.5MB") == ("size_mb", 0.5)
    for bad in ("0", "-1ms", "0M", "abc", "5 s", "nan", "inf"):
        with pytest.raises(argparse.ArgumentTypeError, match="must be a number > 0"):
            cost_budget(bad)


def test_cost_model_recovers_a_linear_count():
    rng = np.random.default_rng(0)
    truth = {"LceBconv2d": [0.03, 0, 0.5, 0.2, 40.0, 900.0], "ADD": [0, 0, 0.25, 0.25, 0, 300.0]}
    samples = []
    for name, coefficients in truth.items():
        for _ in range(12):
            macs = rng.integers(1e4, 1e7)
            features = np.array([macs if name == "LceBconv2d" else 0, 0,
                                 rng.integers(1e3, 1e6), rng.integers(1e3, 1e6),
                                 rng.integers(1, 1e4) if name == "LceBconv2d" else 0, 1.0])
            samples.append((name, features, float(np.dot(coefficients, features))))
    model = CostModel.fit(samples, "key")
    for name, coefficients in truth.items():
        np.testing.assert_allclose(model.coefficients[name], coefficients, rtol=1e-6,
                                   atol=1e-6)
    features = np.array([0, 0, 1000.0, 1000.0, 0, 1.0])
    assert model.predict_features("ADD", features) == pytest.approx(800.0)
    # An operator name never seen falls back to its family, fitted on every sample of it.
    assert model.predict_features("SUB", features) == pytest.approx(
        max(float(np.dot(model.coefficients["elementwise"], features)), 0.0))
    again = CostModel.from_dict(model.to_dict())
    assert again.coefficients == model.coefficients and again.cache_key == "key"
    with pytest.raises(ValueError, match="refit"):
        CostModel.from_dict({**model.to_dict(), "features": list(FEATURES[:-1])})


def test_every_run_gets_the_training_options_given():
    from horq_keras.cli import build_parser
    from horq_keras.search.search import common_train_args

    args = build_parser().parse_args([
        "search", "--space", "horq_lenet", "order=1/2", "--learning-rate", "0.01",
        "--mixed-precision", "--strategy", "one", "--epochs", "3", "--limit-train", "64"])
    assert common_train_args(args) == [
        "--data", "mnist", "--recipe", "lenet-mnist", "--seed", "0", "--verify-samples", "1000",
        "--limit-train", "64", "--learning-rate", "0.01", "--strategy", "one",
        "--mixed-precision"]  # not --epochs: each rung sets its own
