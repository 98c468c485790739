"""``horq-keras search``: the candidates of ``--space``, successive halving on epochs, the
cost of every converted model on ARM, the accuracy–cost front and the choice under a budget.

The run:

1. :func:`check_candidates` puts every candidate through the trainer's own checks
   (:func:`horq_keras.training.train.plan_run`: model arguments, the data, that the model
   builds at the data's input shape) before anything is trained; a bad one is one line,
   exit code 2, nothing written.
2. Rungs (:func:`horq_keras.search.halving.rung_epochs`): each alive candidate is trained
   for the rung's epochs by a ``horq-keras train`` process (:mod:`.runs`; ``--jobs`` at a
   time; a finished run is read from ``OUTPUT/runs/``), its converted model costed
   (:func:`cost_of`), and :func:`horq_keras.search.halving.survivors` keeps the top
   ``1/eta`` and the rung's front for the next rung.
3. The front of the last rung (every candidate there trained with the same epochs),
   written by :mod:`.output`; with ``--max-cost`` the most accurate verified candidate
   under the budget is copied to ``OUTPUT/chosen/``.
"""

import argparse
import concurrent.futures
import json
import pathlib
import shutil
import tempfile
import time

from horq_keras.exit_status import BAD_INPUT, OK, fail
from horq_keras.files import atomic_write_bytes, atomic_write_text
from horq_keras.search import halving, output, runs
from horq_keras.search.pareto import BudgetError, choose, pareto_front
from horq_keras.search.space import SpaceError, expand, parse_space, varying_keys
from horq_keras.tflite.arm_cost import (
    DEFAULT_MODEL_PATH, CostModel, instructions_per_second, load_counts, model_cost,
)
from horq_keras.training.recipes import resolve

__all__ = ["MARKER", "check_candidates", "common_train_args", "cost_of", "run"]

#: Marks an output folder as a search's (a resumed search finds it there).
MARKER = ".horq-keras-search"


def common_train_args(args):
    """The ``horq-keras train`` options every run shares (all but model and epochs)."""
    argv = ["--data", str(args.data), "--recipe", args.recipe, "--seed", str(args.seed),
            "--verify-samples", str(args.verify_samples)]
    for option in ("data_dir", "channels", "image_size", "limit_train", "limit_test"):
        if getattr(args, option) is not None:
            argv += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    for dest, option, flag, default in args.train_options:  # recipe values, scale-out
        value = getattr(args, dest)
        if value != default and dest != "recipe_epochs":  # the rungs set the epochs
            argv += [option] if flag else [option, str(value)]
    return argv


def _train_parser():
    from horq_keras.training import cli as train_cli

    parser = argparse.ArgumentParser(prog="horq-keras")
    train_cli.register(parser.add_subparsers(dest="command"))
    return parser


def check_candidates(candidates, common, epochs):
    """Each candidate through the trainer's checks (nothing written); ``SpaceError``
    naming the first bad one."""
    from horq_keras.datasets.pipelines import DataError
    from horq_keras.training.rundir import RunDirError
    from horq_keras.training.train import plan_run

    parser = _train_parser()
    with tempfile.TemporaryDirectory() as folder:
        for index, candidate in enumerate(candidates):
            argv = runs.train_argv(candidate, epochs, pathlib.Path(folder) / str(index), common)
            try:
                plan_run(parser.parse_args(argv))
            except (ValueError, RunDirError, DataError, OSError) as error:
                raise SpaceError(f"--space {candidate.label()}: {error}") from error


def cost_of(tflite, counts, cost_model):
    """:class:`~horq_keras.tflite.arm_cost.ModelCost` of a ``.tflite`` file as a dict."""
    return model_cost(pathlib.Path(tflite).read_bytes(), counts=counts,
                      cost_model=cost_model).to_dict()


def _prepare_output(folder, common):
    """Refuse a non-empty folder that is not a search's, or a search's whose runs were
    trained with other options than ``common`` (its finished runs would be read as if
    trained with these); mark it and record ``common``."""
    folder = pathlib.Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--output-dir: {folder} exists and is not a directory.")
    marker = folder / MARKER
    if folder.is_dir() and any(folder.iterdir()) and not marker.exists():
        raise ValueError(f"--output-dir: {folder} is not empty and is not a horq-keras search "
                         f"({MARKER} is missing); choose another folder.")
    if marker.exists() and marker.read_text().strip():
        saved = json.loads(marker.read_text())["train_options"]
        if saved != common:
            raise ValueError(f"--output-dir: {folder} holds a search whose runs were trained "
                             f"with other options ({' '.join(saved)}); rerun it with those, or "
                             f"choose another --output-dir.")
        return
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, json.dumps({"train_options": common}) + "\n")


def _load_cost(args):
    path = args.cost_model or DEFAULT_MODEL_PATH
    try:
        cost_model = CostModel.load(path)
    except FileNotFoundError:
        raise ValueError(f"--cost-model: {path} does not exist (fit one with "
                         f"benchmarks/arm_cost_model.py).") from None
    except (ValueError, KeyError) as error:
        raise ValueError(f"--cost-model: {path}: {error}") from error
    counts = {}
    if args.arm_counts is not None:
        if not args.arm_counts.is_file():
            raise ValueError(f"--arm-counts: {args.arm_counts} is not a file.")
        counts = load_counts(args.arm_counts, cost_model.cache_key)
    return counts, cost_model


def _rung(alive, epochs, args, common, counts, cost_model, log):
    """Train (or read) every alive candidate at ``epochs``; one point per candidate."""
    work = args.output_dir / "runs"

    def one(candidate):
        out = runs.run_folder(work, candidate, epochs)
        trained = not (out / "report.json").exists()
        try:
            report = runs.train_run(runs.train_argv(candidate, epochs, out, common), out)
        except runs.RunFailed as error:
            return {"failed": str(error), "accuracy": None, "trained": trained}
        point = {**runs.result(report, out), "trained": trained}
        if point["tflite"] is None:
            return {**point, "failed": f"no converted model in {out}", "accuracy": None}
        return {**point, **cost_of(point["tflite"], counts, cost_model)}

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        points = list(pool.map(one, alive))
    labels = varying_keys(alive) or None
    for candidate, point in zip(alive, points):
        point.update(key=candidate.key, model=candidate.model, args=dict(candidate.args),
                     label=candidate.label(labels), epochs=epochs)
        state = ("failed: " + point["failed"]) if point.get("failed") else (
            f"accuracy {point['accuracy']:.4f}, {point['instructions'] / 1e6:.2f} M "
            f"instructions ({'trained' if point['trained'] else 'read from its report'})")
        log(f"[{epochs} epoch(s)] {point['label']}: {state}")
    return points


def run(args):
    """The ``search`` job; returns the exit code (see :mod:`horq_keras.exit_status`)."""
    began = time.monotonic()
    try:
        candidates = expand([parse_space(tokens) for tokens in args.space])
        recipe = resolve(args.recipe, args)
        rungs = halving.rung_epochs(args.min_epochs, recipe.epochs, args.eta)
        common = common_train_args(args)
        check_candidates(candidates, common, rungs[0])
        counts, cost_model = _load_cost(args)
        _prepare_output(args.output_dir, common)
    except ValueError as error:
        return fail("search", error)
    print(f"{len(candidates)} candidate(s); rungs of {', '.join(map(str, rungs))} epoch(s), "
          f"eta {args.eta}")
    log = lambda text: print(text, flush=True)  # noqa: E731
    alive, history = candidates, []
    for index, epochs in enumerate(rungs):
        points = _rung(alive, epochs, args, common, counts, cost_model, log)
        history.append(points)
        if index + 1 < len(rungs):
            kept = {id(p) for p in halving.survivors(points, args.eta)}
            alive = [c for c, p in zip(alive, points) if id(p) in kept]
    final = history[-1]
    if all(point.get("accuracy") is None for point in final):
        return fail("search", "every candidate of the last rung failed; see the logs in "
                              f"{args.output_dir / 'runs'}")
    front = pareto_front(final)
    chosen, status = None, OK
    if args.max_cost is not None:
        key, budget = args.max_cost
        try:
            chosen = choose(final, budget, key, eligible=lambda point: point["verified"])
        except BudgetError as error:
            status = fail("search", error, BAD_INPUT)
    summary = {"rungs": rungs, "eta": args.eta, "candidates": len(candidates),
               "instructions_per_second": instructions_per_second(),
               "cost_model": cost_model.to_dict(),
               "arm_counts": None if args.arm_counts is None else str(args.arm_counts),
               "max_cost": args.max_cost, "wall_seconds": time.monotonic() - began,
               "trained": sum(p.get("trained", False) for points in history for p in points)}
    output.write(args.output_dir, history, front, chosen, summary)
    shutil.rmtree(args.output_dir / "chosen", ignore_errors=True)  # an earlier search's
    if chosen is not None:
        folder = args.output_dir / "chosen"
        folder.mkdir(exist_ok=True)
        atomic_write_bytes(folder / "model.tflite", pathlib.Path(chosen["tflite"]).read_bytes())
        report = pathlib.Path(chosen["folder"]) / "report.json"
        atomic_write_text(folder / "report.json", report.read_text())
        atomic_write_text(folder / "candidate.json", json.dumps(chosen, indent=1) + "\n")
        print(f"chosen: {chosen['label']} -> {folder / 'model.tflite'}")
    return status
