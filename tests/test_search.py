"""``horq-keras search`` end to end on a slice of real MNIST: two HORQ LeNets trained,
converted and verified by ``horq-keras train`` (in this process, to spare an interpreter
per run), costed, the front written; an interrupted search resumes without retraining its
finished runs; ``--max-cost`` under every candidate and bad spaces are one-line errors."""

import contextlib
import json
import pathlib
import re

import pytest
from train_data import REAL_MNIST, needs_mnist

from horq_keras.cli import main
from horq_keras.exit_status import BAD_INPUT, INTERRUPTED, OK
from horq_keras.search import runs
from horq_keras.search.pareto import dominates
from horq_keras.tflite.check import check_flatbuffer

ARGV = ["search", "--space", "horq_lenet", "order=1/2", "--limit-train", "96",
        "--limit-test", "32", "--verify-samples", "32", "--batch-size", "32", "--epochs", "1",
        "--data-dir", str(REAL_MNIST)]


class Interrupted(KeyboardInterrupt):
    """A simulated Ctrl-C."""


@pytest.fixture
def trains(monkeypatch):
    """Run each ``horq-keras train`` in this process; the list of runs started."""
    started = []

    def train_process(argv, log_path):
        started.append(argv)
        with open(log_path, "a") as log, contextlib.redirect_stdout(log):
            return main(argv)

    monkeypatch.setattr(runs, "train_process", train_process)
    return started


def search(out, *extra):
    return main([*ARGV, "--output-dir", str(out), *extra])


@needs_mnist
def test_interrupted_search_resumes_and_chooses_on_the_front(tmp_path, trains, monkeypatch,
                                                             capsys):
    out = tmp_path / "search"
    real = runs.train_process

    def second_interrupted(argv, log_path):
        if len(trains) == 1:
            trains.append(argv)
            raise Interrupted
        return real(argv, log_path)

    monkeypatch.setattr(runs, "train_process", second_interrupted)
    assert search(out) == INTERRUPTED
    assert len(trains) == 2  # one finished, one interrupted
    monkeypatch.setattr(runs, "train_process", real)

    assert search(out, "--max-cost", "1000M") == OK
    assert len(trains) == 3  # only the interrupted candidate was trained again
    data = json.loads((out / "frontier.json").read_text())
    final = data["rungs_points"][-1]
    assert [p["args"]["order"] for p in final] == ["1", "2"]
    assert final[0]["instructions"] < final[1]["instructions"]  # two bases: more work
    assert final[0]["binary_macs"] * 2 == final[1]["binary_macs"]
    front_keys = {p["key"] for p in data["front"]}
    for p in final:  # the front is exactly the non-dominated points
        assert (p["key"] in front_keys) == (not any(dominates(q, p) for q in final))
    chosen = data["chosen"]
    assert chosen["key"] in front_keys and chosen["verified"]
    assert chosen["accuracy"] == max(p["accuracy"] for p in final if p["verified"])
    tflite = (out / "chosen" / "model.tflite").read_bytes()
    check_flatbuffer(tflite)
    assert tflite == pathlib.Path(chosen["tflite"]).read_bytes()
    assert json.loads((out / "chosen" / "report.json").read_text())["parity_ok"]
    assert (out / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| horq_lenet order=1 | 1 |" in (out / "frontier.md").read_text()

    # The cheapest candidate's budget: the most accurate of what fits it, never a point
    # that another candidate dominates.
    capsys.readouterr()
    cheapest = min(p["instructions"] for p in final)
    assert search(out, "--max-cost", f"{cheapest / 1e6}M") == OK
    assert len(trains) == 3
    chosen = json.loads((out / "frontier.json").read_text())["chosen"]
    assert chosen["instructions"] == cheapest
    assert not any(dominates(p, chosen) for p in final)

    # Runs trained with other options are never read as this search's.
    capsys.readouterr()
    assert search(out, "--learning-rate", "0.5") == BAD_INPUT
    assert "trained with other options" in capsys.readouterr().err
    assert len(trains) == 3

    # Under every candidate: one line, exit 2, nothing chosen, nothing trained.
    capsys.readouterr()
    assert search(out, "--max-cost", f"{cheapest / 2e6}M") == BAD_INPUT
    error = capsys.readouterr().err.strip()
    assert error.startswith("horq-keras search: error: --max-cost: no candidate costs at most")
    assert "\n" not in error
    assert not (out / "chosen").exists() and len(trains) == 3


@needs_mnist
@pytest.mark.parametrize("space, message", [
    ([], "the search space is empty"),
    (["--space", "groupnet_resnet18", "num_bases=2", "partition=v9",
      "stage_filters=4,4,8,8"], r"partition.*must be one of \('layerwise', 'v1', 'v2', 'v3'\)"),
    (["--space", "groupnet_resnet18", "num_bases=2", "partition=3,3",
      "stage_filters=4,4,8,8"], r"must cover the network's 8 residual blocks"),
    (["--space", "no_such_model", "order=1"], "unknown model 'no_such_model'"),
    (["--space", "horq_lenet", "orders=1/2"], "takes no argument 'orders'"),
])
def test_bad_space_is_one_line_and_writes_nothing(tmp_path, trains, capsys, space, message):
    out = tmp_path / "search"
    argv = [*ARGV[ARGV.index("--limit-train"):], "--output-dir", str(out)]
    assert main(["search", *space, *argv]) == BAD_INPUT
    error = capsys.readouterr().err.strip()
    assert error.startswith("horq-keras search: error: ") and "\n" not in error
    assert re.search(message, error), error
    assert not out.exists() and trains == []


@pytest.mark.parametrize("budget", ["0", "-3ms", "0M"])
def test_budget_zero_or_negative_is_refused(budget, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*ARGV, f"--max-cost={budget}"])
    assert exit_info.value.code == BAD_INPUT
    assert "--max-cost: must be a number > 0" in capsys.readouterr().err
