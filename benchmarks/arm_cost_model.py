"""The cost model of ``horq-keras search``: per-operator aarch64 instruction counts on the
emulated Cortex-A72, a linear model fitted to them, and its error against the emulator.

Networks: those of ``benchmarks/arm_emulated.py`` (``--networks``, at the sizes given) and
MNIST networks of the trainer's registry (``--mnist``: ``MODEL:key=value,...`` specs at
28x28x1, 10 classes, built with random weights: counts depend on shapes, not weights),
converted as ``horq_keras.converters.convert`` does (``deployable``, then LCE), and any
``.tflite`` given with ``--tflite`` (a search's candidates, for example). Every operator
is counted by ``arm_emulated.measure`` (cached by signature in ``--cache``).

The model (:class:`horq_keras.tflite.arm_cost.CostModel`): per operator group, instructions
linear in binary MACs, float MACs, bytes read, bytes written and a constant, least squares.
Its error is measured per network, **leave one network out**: the model fitted to the
operators of every other network (less those with a signature the held-out network has)
predicts every operator of the held-out one, and the predicted total is set against the
counted total. The model fitted to all networks is written to ``--model-output`` (default:
``horq_keras/tflite/arm_cost_model.json``, the package's default cost model), with the
errors measured here.

Command and budget: ``python benchmarks/arm_cost_model.py --models-dir .arm-kernel/models``
(root, after ``make arm-setup``): 20 networks, 198 distinct operators; 9.5 min on the shared
2-core machine, nearly all of it the conversions (the counts of 168 new operators: 13 s);
8 s with the networks kept in ``--models-dir`` and the counts cached. ``--smoke``: a tiny
stack (float, bare binary, HORQ-1/2), written to ``--output-dir`` only, the package's model
untouched.
"""

import hashlib
import json
import pathlib
import sys
import tempfile
import time

import horq_keras  # noqa: F401  (selects Keras 2 for larq before TensorFlow is used)
import numpy as np
import tensorflow as tf

import _arm_emulator as emulator
import arm_emulated
from _results import base_parser, command_line, markdown_table, parse_smoke_args, write_results
from horq_keras.converters.conversion import convert_to_flatbuffer, deployable
from horq_keras.files import atomic_write_bytes, atomic_write_text
from horq_keras.tflite.arm_cost import (
    DEFAULT_MODEL_PATH, FEATURES, CostModel, operator_features, signature,
)
from horq_keras.tflite.graph import read_graph
from horq_keras.training import registry

NAME = "arm_cost_model"
#: MNIST networks like the search benchmark's candidates (the Group-Net study's widths).
MNIST = [
    *(f"groupnet_resnet18:num_bases={k},activation_bits={a},partition={p},"
      f"stage_filters=8/16/32/64" for k, a, p in [
          (1, 1, "v1"), (3, 1, "v1"), (3, 1, "layerwise"), (3, 1, "v2"), (1, 2, "v1"),
          (3, 2, "v1"), (1, 4, "v1")]),
    *(f"horq_lenet:order={k}" for k in (1, 2, 3)),
]


def parse_args(argv):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--networks", nargs="*", default=["stack", "resnet18"],
                        choices=["stack", "resnet18", "groupnet"],
                        help="arm_emulated.py's networks (sizes below)")
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--stack-size", type=int, default=14)
    parser.add_argument("--stack-channels", type=int, default=64)
    parser.add_argument("--resnet-size", type=int, default=32)
    parser.add_argument("--groupnet-bases", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--groupnet-bits", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--mnist", nargs="*", default=MNIST,
                        help="MODEL:key=value,... of the trainer's registry at 28x28x1 "
                             "('/' separates the integers of a tuple value)")
    parser.add_argument("--tflite", type=pathlib.Path, nargs="*", default=[],
                        help="converted models to count and fit to as well")
    parser.add_argument("--models-dir", type=pathlib.Path, default=None,
                        help="keep each converted network here and read it back on a rerun "
                             "(conversions take minutes on a loaded machine)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cache", default=str(emulator.ARM_ROOT / "counts.json"))
    parser.add_argument("--model-output", type=pathlib.Path, default=DEFAULT_MODEL_PATH,
                        help="where the fitted model goes (default: %(default)s)")
    parser.add_argument("--name", default=NAME)
    args = parse_smoke_args(parser, argv, {
        "networks": ["stack"], "orders": [1, 2], "stack_size": 6, "stack_channels": 32,
        "mnist": [], "model_output": None})
    args.cache = pathlib.Path(args.cache) if args.cache else None
    args.beta_forms = ["pixel"]
    reason = emulator.missing()
    if reason:
        parser.error(reason)
    return args


def mnist_flatbuffer(spec):
    """Convert the registry model ``MODEL:key=value,...`` at 28x28x1 as ``convert`` does."""
    name, _, pairs = spec.partition(":")
    pairs = [pair.replace("/", ",") for pair in pairs.split(",") if pair]
    model = registry.build(name, registry.parse_model_args(name, pairs), input_shape=(28, 28, 1),
                           num_classes=10)
    return convert_to_flatbuffer(deployable(model)[0])


def _converted(label, convert, folder, log):
    """The flatbuffer of network ``label``: read from ``folder`` when kept there, else
    ``convert()``-ed (and kept)."""
    path = None
    if folder is not None:
        path = folder / (hashlib.sha1(label.encode()).hexdigest()[:16] + ".tflite")
        if path.exists():
            return path.read_bytes()
    started = time.perf_counter()
    flatbuffer = convert()
    log(f"converted {label} in {time.perf_counter() - started:.0f} s")
    tf.keras.backend.clear_session()
    if path is not None:
        atomic_write_bytes(path, flatbuffer)
    return flatbuffer


def networks(args, log):
    """``{label: flatbuffer}`` of every network."""
    result = {}
    for label, builders in arm_emulated.models(args).items():
        for name, (kind, build) in builders.items():
            result[f"{label}: {name}"] = _converted(
                f"{label}: {name}", lambda k=kind, b=build: arm_emulated._convert(k, b),
                args.models_dir, log)
    for spec in args.mnist:
        result[f"MNIST {spec}"] = _converted(f"MNIST {spec}", lambda s=spec: mnist_flatbuffer(s),
                                             args.models_dir, log)
    for path in args.tflite:
        result[str(path)] = path.read_bytes()
    return result


def samples(flatbuffer, counts):
    """``[(signature, name, features, count)]`` of every counted operator of a model."""
    graph = read_graph(flatbuffer)
    rows = []
    for op in graph.operators:
        sig = signature(op, graph)
        if counts.get(sig) is not None:
            rows.append((sig, op.name, operator_features(op), counts[sig]))
    return rows


def held_out_errors(per_network, key, strict):
    """Per network: counted total, the total predicted by the model fitted to the other
    networks, the relative error. ``strict``: also without any operator whose signature the
    held-out network has (a network of shapes never counted); else the other networks'
    operators as they are (a network new to the cache, whose layer shapes other networks
    may share)."""
    errors = {}
    for label, rows in per_network.items():
        own = {sig for sig, *_ in rows} if strict else set()
        train = {sig: (name, features, count) for other, others in per_network.items()
                 if other != label for sig, name, features, count in others if sig not in own}
        model = CostModel.fit(list(train.values()), key)
        counted = sum(count for *_, count in rows)
        predictions = [model.predict_features(name, features) for _, name, features, _ in rows]
        if None in predictions:  # no other network has an operator of its family
            errors[label] = {"counted": counted, "predicted": None, "relative_error": None}
            continue
        predicted = sum(predictions)
        errors[label] = {"counted": counted, "predicted": predicted,
                         "relative_error": (predicted - counted) / counted if counted else 0.0}
    return errors


def summarize(errors):
    """``(mean |error|, max |error|, networks predicted)``; ``None``s when none was."""
    predicted = [abs(e["relative_error"]) for e in errors.values()
                 if e["relative_error"] is not None]
    if not predicted:
        return None, None, 0
    return float(np.mean(predicted)), max(predicted), len(predicted)


def _percent(value):
    return "—" if value is None else f"{100 * value:+.1f} %"


def plot(errors):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 5))
    points = [e for e in errors.values() if e["predicted"] is not None]
    counted = np.array([e["counted"] for e in points] or [1.0]) / 1e6
    predicted = np.array([e["predicted"] for e in points] or [np.nan]) / 1e6
    axis.loglog(counted, predicted, "o")
    low, high = counted.min() / 1.5, counted.max() * 1.5
    axis.plot([low, high], [low, high], "k-", lw=0.8, label="exact")
    axis.fill_between([low, high], [0.9 * low, 0.9 * high], [1.1 * low, 1.1 * high],
                      alpha=0.2, label="±10 %")
    axis.set(xlabel="counted on the emulator (M instructions)",
             ylabel="predicted, fitted to the other networks (M)",
             title="aarch64 cost model, leave one network out")
    axis.legend()
    return figure


def main(argv=None):
    args = parse_args(argv)
    command = command_line("arm_cost_model.py", argv)
    start = time.perf_counter()
    log = lambda text: print(text, flush=True)  # noqa: E731
    flatbuffers = networks(args, log)
    with tempfile.TemporaryDirectory() as workdir:
        counts, _ = arm_emulated.measure(list(flatbuffers.values()), args,
                                         pathlib.Path(workdir), log)
    key = arm_emulated._cache_key(args)
    per_network = {label: samples(fb, counts) for label, fb in flatbuffers.items()}
    errors = {"new network": held_out_errors(per_network, key, strict=False),
              "new shapes": held_out_errors(per_network, key, strict=True)}
    unique = {sig: (name, features, count) for rows in per_network.values()
              for sig, name, features, count in rows}
    model = CostModel.fit(list(unique.values()), key)
    model.error = {"method": "leave one network out, relative error of the network's total; "
                             "'new network': fitted to the other networks' operators, "
                             "'new shapes': also without the operators it shares with them",
                   "networks": len(per_network), "operators": len(unique)}
    for kind, measured in errors.items():
        mean, worst, count = summarize(measured)
        model.error[kind] = {"mean_abs_relative_error": mean, "max_abs_relative_error": worst,
                             "networks_predicted": count, "per_network": measured}
    rows = []
    for label, counted in ((label, e["counted"]) for label, e in errors["new network"].items()):
        row = [label, f"{counted / 1e6:,.3f}"]
        for measured in errors.values():
            predicted = measured[label]["predicted"]
            row += ["—" if predicted is None else f"{predicted / 1e6:,.3f}",
                    _percent(measured[label]["relative_error"])]
        rows.append(row)
    summaries = []
    for kind in errors:
        mean, worst, count = summarize(errors[kind])
        summaries.append(f"{kind}: " + ("no network predictable" if mean is None else
                                        f"**mean |error| {100 * mean:.1f} %, max "
                                        f"{100 * worst:.1f} %** over {count} networks"))
    groups = [[group, *(f"{c:.4g}" for c in coefficients)]
              for group, coefficients in model.coefficients.items()]
    wall = time.perf_counter() - start
    markdown = (
        "# aarch64 cost model: fitted to per-operator counts, checked against the emulator\n\n"
        f"{len(flatbuffers)} networks, {len(unique)} distinct operators counted on the emulated "
        f"{emulator.CPU} (`benchmarks/arm_emulated.py`'s method; LCE operators by the NEON "
        "stand-in). Each network's total is predicted by the model fitted to the *other* "
        "networks and set against its counted total (goal: within 10 %), two ways: *new "
        "network*, fitted to the other networks' operators (layer shapes that other networks "
        "share with it included: a search candidate whose layers the cache has seen in "
        "other networks); *new shapes*, fitted without any operator whose signature the "
        "held-out network has (shapes never counted). "
        + "; ".join(summaries) + ".\n\n"
        + markdown_table(["network", "counted (M)", "new network: predicted (M)", "error",
                          "new shapes: predicted (M)", "error"], rows)
        + "\nCoefficients of the model fitted to all of them (instructions per feature unit; "
        "a group is an operator name with enough samples, else its family):\n\n"
        + markdown_table(["group", *FEATURES], groups)
        + f"\nWall time: {wall:.0f} s.\n")
    print(markdown)
    write_results(args.output_dir, args.name, command=command, markdown=markdown,
                  data={"settings": {k: str(v) for k, v in vars(args).items()
                                     if k != "output_dir"},
                        "model": model.to_dict(), "wall_s": wall},
                  figure=plot(errors["new network"]))
    # after the results, whose provenance would count the package's model file as a change
    if args.model_output is not None:
        atomic_write_text(args.model_output, json.dumps(model.to_dict(), indent=1) + "\n")
        log(f"cost model written to {args.model_output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
