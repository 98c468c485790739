"""LCE latency of HORQ networks by order vs their float twins, with a per-operator profile.

Two networks, each built with ``HORQConv2D`` (pixel beta form, or ``--beta-form sample``;
``pad_values=1.0``) of
order K, with plain ``Conv2D`` (the float twin) and with a bare binary convolution (larq
``QuantConv2D``, ``ste_sign`` inputs, ``magnitude_aware_sign`` weights: one
``LceBconv2d`` and nothing else, the floor of any binary layer):

- the stack: 4 x (3x3 conv, 256 channels, ``padding="same"`` -> BatchNorm) on 28x28;
- ResNet-18 at 224x224: float 7x7 stem (64, stride 2) -> BN -> ReLU -> 3x3 max pool, four
  stages of two basic blocks (64/128/256/512 channels; block = conv3x3 -> BN -> conv3x3
  -> BN, plus the shortcut: identity, or 2x2 average pool + float 1x1 conv + BN when
  downsampling), global average pool, float 1000-way dense. The float twin has ReLUs
  after the first BN of each block and after each addition. Weights are random: only
  latency matters.

A third section measures HORQ at the price of its binary convolutions: on the stack,
``HORQ-K / (K x bconv)`` for orders 1-3 and both deployable beta forms (pixel, sample),
as LCE alone converts the HORQ layers (*before*) and after ``fold_horq_batch_norms``
(*after*: what ``horq_keras.converters.convert`` does: the batch norm's scale fused into
``LceBconv2d``), with op counts and per-operator profiles of both. Goal: <= 1.05.

Every model is converted as ``horq_keras.converters.convert`` converts it (batch norms
folded into the HORQ layers, then ``lce.convert_keras_model``) and run by LCE's interpreter
(:class:`horq_keras.tflite.runner.LceInterpreter`, 1 thread, ``use_indirect_bgemm=True``,
``use_xnnpack=True``) on this machine (x86). Repeats are interleaved: each repeat times
every model once, so load changes hit all models alike; min and median are reported.

Goals (issue "converters"): latency(order K) / latency(order 1) <= 1.1 K; order 1 <= 0.5x
float; order 2 <= 1.0x float. The per-operator profile explains a miss: every operator
of a converted model is cut out into a one-operator flatbuffer (same tensors and
constants) and timed alone, interleaved, and the times are summed by kind -- binary
convolutions, the float convolutions / dense layers, HORQ's float overhead (ABS, MEAN,
the 1-channel box filter of the beta map, MUL, SUB, ADD(_N), LceQuantize/LceDequantize)
and the rest. A one-operator time includes copying its inputs in and its outputs out.

**x86, not ARM.** LCE's optimized binary kernels are aarch64/arm32 assembly; on x86 it
runs portable C++ binary kernels against XNNPACK's tuned float kernels, so binary
convolutions gain far less over float here than on a board.

Command and budget: ``python benchmarks/horq_latency.py --repeats 30 --profile-repeats 7``
(the committed results) takes about 5 minutes on an idle 2-core x86 CPU (24 conversions,
interleaved repeats, per-operator profiles), several times that when other jobs load the
cores; run it at normal priority (``nice -n 0``). ``--no-networks`` runs only the
overhead section. ``--smoke`` takes about a minute.
Results: ``benchmarks/results/horq_latency.{md,json,png}``.
"""

import collections
import dataclasses
import functools
import sys
import time

import horq_keras  # noqa: F401  (selects Keras 2 for larq before TensorFlow is used)
import numpy as np

from _results import (
    base_parser, command_line, load_note, markdown_table, parse_smoke_args, write_results,
)
from _flatbuffers import single_op_flatbuffers
from _models import binary_convs_per_layer, convert, resnet18, stack_model
from _timing import load_average, time_interleaved
from horq_keras.converters.report import is_box_filter
from horq_keras.tflite.graph import read_graph
from horq_keras.tflite.runner import InterpreterOptions, LceInterpreter

NAME = "horq_latency"
#: LCE's x86 flags: 1 thread, indirect BGEMM, XNNPACK (the runner's defaults).
INTERPRETER = InterpreterOptions()
#: Elementwise float operators: HORQ's bases and beta scaling, unfused batch norms, adds.
#: Goal of the overhead section: HORQ-K latency <= 1.05 x K bare binary convolutions.
OVERHEAD_GOAL = 1.05
OVERHEAD_OPS = ("ABS", "MEAN", "MUL", "SUB", "ADD", "ADD_N", "LceQuantize", "LceDequantize",
                "AVERAGE_POOL_2D", "PAD")


def parse_args(argv):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2, 3, 4],
                        help="HORQ orders of the stack")
    parser.add_argument("--resnet-orders", type=int, nargs="+", default=[1, 2, 3],
                        help="HORQ orders of ResNet-18")
    parser.add_argument("--beta-form", choices=["pixel", "sample"], default="pixel",
                        help="beta form of the HORQ layers (default: pixel)")
    parser.add_argument("--stack-size", type=int, default=28)
    parser.add_argument("--stack-channels", type=int, default=256)
    parser.add_argument("--resnet-size", type=int, default=224)
    parser.add_argument("--resnet-width", type=int, default=64,
                        help="channels of ResNet-18's first stage (64; doubled per stage)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--profile-repeats", type=int, default=5,
                        help="interleaved repeats of the one-operator models")
    parser.add_argument("--overhead-orders", type=int, nargs="*", default=[1, 2, 3],
                        help="orders of the HORQ-K / (K x bconv) section (none: skip it)")
    parser.add_argument("--no-networks", dest="networks", action="store_false",
                        help="only the HORQ-K / (K x bconv) section")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    args = parse_smoke_args(parser, argv, {
        "orders": [1, 2], "resnet_orders": [1, 2], "stack_size": 8, "stack_channels": 32,
        "resnet_size": 32, "resnet_width": 32, "repeats": 2, "profile_repeats": 1,
        "overhead_orders": [1],
    })
    if min(args.orders + args.resnet_orders + args.overhead_orders) < 1:
        parser.error("orders must be >= 1")
    if 1 not in args.orders or 1 not in args.resnet_orders:
        parser.error("orders must include 1 (the goals are ratios to order 1)")
    if args.repeats < 1 or args.profile_repeats < 1:
        parser.error("--repeats and --profile-repeats must be >= 1")
    return args


def _random_inputs(interpreter, rng):
    inputs = []
    for shape, dtype in zip(interpreter.input_shapes, interpreter.input_types):
        dtype = np.dtype(dtype)
        if dtype.kind == "f":
            inputs.append(rng.standard_normal(shape).astype(dtype))
        else:  # bitpacked int32 words of a binary op
            info = np.iinfo(dtype)
            inputs.append(rng.integers(info.min, info.max, size=shape, dtype=dtype))
    return inputs


def time_runs(runs, repeats):
    """``{key: {"min", "median"}}`` seconds; ``runs`` maps key -> (interpreter, inputs)."""
    samples = time_interleaved(
        {key: functools.partial(interpreter.invoke, inputs)
         for key, (interpreter, inputs) in runs.items()}, repeats)
    return {key: {"min": float(np.min(v)), "median": float(np.median(v))}
            for key, v in samples.items()}


def _op_kind(op, graph):
    if op.name == "LceBconv2d":
        return "binary conv"
    if is_box_filter(op, graph):
        return "beta-map box filter"
    if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        return "float conv/dense"
    if op.name in OVERHEAD_OPS:
        return "elementwise float ops"
    return "other"


def profile(flatbuffer, repeats, rng):
    """Per-operator times (min over interleaved repeats), summed by kind and by name."""
    graph = read_graph(flatbuffer)
    runs = {}
    for index, ((name, single), op) in enumerate(zip(single_op_flatbuffers(flatbuffer),
                                                    graph.operators)):
        interpreter = LceInterpreter(single, INTERPRETER)
        runs[(index, name, _op_kind(op, graph))] = (interpreter, _random_inputs(interpreter, rng))
    times = time_runs(runs, repeats)
    by_kind, by_name = {}, {}
    for (_, name, kind), value in times.items():
        by_kind[kind] = by_kind.get(kind, 0.0) + value["min"]
        by_name[name] = by_name.get(name, 0.0) + value["min"]
    return {"by_kind_ms": {k: 1e3 * v for k, v in sorted(by_kind.items())},
            "by_op_ms": {k: 1e3 * v for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])},
            "sum_ms": 1e3 * sum(by_kind.values())}


def goals(latency, orders):
    """The goals on min and on median latencies: ``{goal: {stat: (value, met)}}``; with a
    bare binary model also HORQ-K / (K x bconv) <= 1.05."""
    result = {}
    for stat in ("min", "median"):
        if "bconv" in latency:
            for order in orders:
                ratio = latency[f"horq{order}"][stat] / (order * latency["bconv"][stat])
                result.setdefault(f"order {order} / ({order} x bconv) <= {OVERHEAD_GOAL}",
                                  {})[stat] = (ratio, ratio <= OVERHEAD_GOAL)
        one = latency["horq1"][stat]
        for order in orders[1:]:
            ratio = latency[f"horq{order}"][stat] / one
            result.setdefault(f"order {order} / order 1 <= {1.1 * order:.1f}", {})[stat] = (
                ratio, ratio <= 1.1 * order)
        ratio = one / latency["float"][stat]
        result.setdefault("order 1 / float <= 0.5", {})[stat] = (ratio, ratio <= 0.5)
        if 2 in orders:
            ratio = latency["horq2"][stat] / latency["float"][stat]
            result.setdefault("order 2 / float <= 1.0", {})[stat] = (ratio, ratio <= 1.0)
    return result


def run_network(label, build, kinds, args, rng):
    print(f"[{label}] converting {', '.join(kinds)}", flush=True)
    flatbuffers = {kind: convert(build(kind), kind) for kind in kinds}
    runs = {}
    for kind, flatbuffer in flatbuffers.items():
        interpreter = LceInterpreter(flatbuffer, INTERPRETER)
        runs[kind] = (interpreter, _random_inputs(interpreter, rng))
    print(f"[{label}] timing {args.repeats} interleaved repeats", flush=True)
    latency = time_runs(runs, args.repeats)
    profiles = {}
    if args.profile:
        for kind in [k for k in ("float", "bconv", "horq1", "horq2") if k in flatbuffers]:
            print(f"[{label}] per-operator profile of {kind}", flush=True)
            profiles[kind] = profile(flatbuffers[kind], args.profile_repeats, rng)
    return {"latency": latency, "profiles": profiles,
            "size_bytes": {kind: len(fb) for kind, fb in flatbuffers.items()}}


def run_overhead(args, rng):
    """HORQ-K / (K x bconv) on the stack per order and beta form, before and after the
    batch-norm folding (``fold_horq_batch_norms``), all models timed interleaved."""
    build = lambda kind: stack_model(kind, args.stack_size, args.stack_channels)  # noqa: E731
    models = {"bconv": ("bconv", True)}
    for order in sorted(set(args.overhead_orders)):
        for form in ("pixel", "sample"):
            for stage, fold in (("before", False), ("after", True)):
                models[f"horq{order}-{form} {stage}"] = (f"horq{order}-{form}", fold)
    print(f"[overhead] converting {len(models)} models", flush=True)
    flatbuffers = {key: convert(build(kind), kind, fold) for key, (kind, fold) in models.items()}
    runs = {}
    for key, flatbuffer in flatbuffers.items():
        interpreter = LceInterpreter(flatbuffer, INTERPRETER)
        runs[key] = (interpreter, _random_inputs(interpreter, rng))
    print(f"[overhead] timing {args.repeats} interleaved repeats", flush=True)
    with load_average() as load:
        latency = time_runs(runs, args.repeats)
    ratios = {key: {stat: latency[key][stat]
                    / (binary_convs_per_layer(kind) * latency["bconv"][stat])
                    for stat in ("min", "median")}
              for key, (kind, _) in models.items()}
    op_counts = {key: dict(collections.Counter(op.name for op in read_graph(fb).operators))
                 for key, fb in flatbuffers.items()}
    profiles = {}
    if args.profile:
        for key, flatbuffer in flatbuffers.items():
            print(f"[overhead] per-operator profile of {key}", flush=True)
            profiles[key] = profile(flatbuffer, args.profile_repeats, rng)
    return {"latency": latency, "ratios": ratios, "op_counts": op_counts,
            "profiles": profiles, "load_average": load}


def render_overhead(args, overhead):
    """Markdown: the ratios, op counts and per-operator profiles of :func:`run_overhead`."""
    latency, ratios, counts = overhead["latency"], overhead["ratios"], overhead["op_counts"]
    layers = counts["bconv"]["LceBconv2d"]
    rows = []
    for key in [k for k in latency if k.endswith(" before")]:
        kind = key.split()[0]
        order, _, form = kind[4:].partition("-")
        after = f"{kind} after"
        rows.append([order, form] + [
            f"{latency[k]['min'] * 1e3:.2f}" for k in (key, after)] + [
            f"{ratios[k]['min']:.3f} / {ratios[k]['median']:.3f}" for k in (key, after)] + [
            f"{sum(counts[k].values()) / layers:g}" for k in (key, after)] + [
            "yes" if ratios[after]["min"] <= OVERHEAD_GOAL else "**no**"])
    text = (
        f"\n## HORQ-K / (K x bconv): the float overhead around the binary convolutions\n\n"
        f"Stack of {layers} x (3x3 conv, {args.stack_channels} channels, "
        f"{args.stack_size}x{args.stack_size}) -> BN; bconv: larq `QuantConv2D` "
        f"(`ste_sign` inputs, `magnitude_aware_sign` kernels: one `LceBconv2d`, BN fused: {latency['bconv']['min'] * 1e3:.2f} "
        f"ms min). *before*: HORQ as converted by `lce.convert_keras_model` alone; *after*: "
        f"with `fold_horq_batch_norms` (what `convert` does). {args.repeats} repeats "
        f"interleaved over all {len(latency)} models; ratios of min / of median latencies. "
        f"{load_note(overhead['load_average'])}\n\n"
        + markdown_table(["K", "beta form", "before (ms, min)", "after (ms, min)",
                          "before: HORQ-K / (K x bconv)", "after", "ops/layer before",
                          "ops/layer after", f"after <= {OVERHEAD_GOAL}"], rows)
    )
    if overhead["profiles"]:
        names = sorted({n for p in overhead["profiles"].values() for n in p["by_op_ms"]},
                       key=lambda n: (n != "LceBconv2d", n))
        rows = [[key] + [f"{p['by_op_ms'].get(n, 0.0):.2f}" for n in names]
                + [f"{p['sum_ms'] - p['by_op_ms'].get('LceBconv2d', 0.0):.2f}",
                   f"{latency[key]['min'] * 1e3:.2f}"]
                for key, p in overhead["profiles"].items()]
        text += (
            f"\n\nPer-operator profile (ms; each operator timed alone, min of "
            f"{args.profile_repeats} interleaved repeats, summed by operator over the "
            f"{layers} layers; a one-operator time includes copying its inputs in and its "
            f"outputs out, which the whole model does not do, so the non-bconv sum "
            f"overstates the overhead):\n\n"
            + markdown_table(["model"] + names + ["sum without LceBconv2d",
                                                  "whole model (min)"], rows)
        )
    return text + "\n"


def analysis(result):
    """The measured cause of the goals' outcome: the binary-conv floor and HORQ's overhead.

    Whole-model minima give the overhead (HORQ order 1 minus the bare binary model);
    the per-operator profile splits binary from float convolution time.
    """
    latency, profiles = result["latency"], result["profiles"]
    if not {"float", "bconv", "horq1"} <= set(profiles):
        return ""
    ms = {kind: 1e3 * value["min"] for kind, value in latency.items()}
    floor, overhead = ms["bconv"] / ms["float"], ms["horq1"] - ms["bconv"]
    binary = profiles["bconv"]["by_kind_ms"].get("binary conv", 0.0)
    float_conv = profiles["float"]["by_kind_ms"].get("float conv/dense", 0.0)
    text = (
        f"\n**Cause.** The bare binary model (one `LceBconv2d` per layer, none of HORQ's "
        f"float work) already takes {floor:.2f}x the float model's latency: in the profile "
        f"its binary convolutions sum to {binary:.1f} ms against {float_conv:.1f} ms for "
        f"the float convolutions of the float model ({binary / float_conv:.2f}x). So on "
        f"this x86 interpreter order 1 cannot reach 0.5x and order 2 cannot reach 1.0x "
        f"the float model whatever HORQ's overhead. That overhead (|R|, the channel mean, "
        f"the beta-map box filter, the beta multiplication, the batch norm it keeps from "
        f"being fused) adds {overhead:.2f} ms at order 1 ({overhead / ms['horq1']:.0%} of "
        f"its latency)"
    )
    orders = sorted(int(kind[4:]) for kind in ms if kind.startswith("horq"))
    if len(orders) > 1:
        step = (ms[f"horq{orders[-1]}"] - ms["horq1"]) / (orders[-1] - 1)
        text += (f"; each further order adds {step:.2f} ms, about one more set of binary "
                 f"convolutions ({binary:.1f} ms) plus the residual's float work")
    return text + ".\n"


def _verdict(goal):
    return " / ".join(f"{stat} {value:.2f} **{'met' if met else 'NOT met'}**"
                      for stat, (value, met) in goal.items())


def render_markdown(args, results, overhead, wall, load_sentence):
    parts = [(
        "# HORQ latency on LCE by order vs float (x86 interpreter)\n\n"
        f"HORQ layers: `beta_form=\"{args.beta_form}\"`. "
        "Networks, interpreter and method: see `benchmarks/horq_latency.py` (docstring). LCE "
        "0.16 interpreter, 1 thread, `use_indirect_bgemm=True`, `use_xnnpack=True`, batch 1, "
        f"{args.repeats} repeats interleaved over all models of a network; min and median "
        f"in ms. {load_sentence}\n\n"
        "**Measured on x86 (LCE's portable C++ binary kernels vs XNNPACK's tuned float "
        "kernels), not on ARM, where LCE's assembly kernels make binary convolutions "
        "several times faster relative to float.**\n"
    )]
    for label, result in results.items():
        latency = result["latency"]
        rows = [[kind, f"{v['min'] * 1e3:.2f}", f"{v['median'] * 1e3:.2f}",
                 f"{v['min'] / latency['float']['min']:.2f}",
                 f"{v['median'] / latency['float']['median']:.2f}",
                 f"{result['size_bytes'][kind]:,}"]
                for kind, v in latency.items()]
        parts.append(f"\n## {label}\n\n" + markdown_table(
            ["model", "min (ms)", "median (ms)", "min / float", "median / float",
             ".tflite bytes"], rows))
        parts.append("\nGoals:\n\n" + "".join(
            f"- {goal}: {_verdict(values)}\n" for goal, values in result["goals"].items()))
        if result["profiles"]:
            kinds = sorted({k for p in result["profiles"].values() for k in p["by_kind_ms"]})
            rows = [[model] + [f"{p['by_kind_ms'].get(k, 0.0):.2f}" for k in kinds]
                    + [f"{p['sum_ms']:.2f}", f"{latency[model]['min'] * 1e3:.2f}"]
                    for model, p in result["profiles"].items()]
            parts.append(
                "\nPer-operator profile (ms; each operator timed alone, min of "
                f"{args.profile_repeats} interleaved repeats, summed by kind; the sum "
                "includes every operator's input/output copies):\n\n"
                + markdown_table(["model"] + kinds + ["sum", "whole model (min)"], rows)
                + analysis(result))
    if overhead:
        parts.append(render_overhead(args, overhead))
    parts.append(f"\nPlot: `{NAME}.png`. Wall time of the benchmark: {wall:.0f} s.\n")
    return "".join(parts)


def _plot_overhead(axis, overhead):
    ratios = overhead["ratios"]
    kinds = [key.split()[0] for key in ratios if key.endswith(" before")]
    x = np.arange(len(kinds))
    for offset, stage in ((-0.2, "before"), (0.2, "after")):
        axis.bar(x + offset, [ratios[f"{kind} {stage}"]["min"] for kind in kinds], 0.4,
                 label=f"{stage} batch-norm folding")
    axis.axhline(1.0, color="gray", linewidth=0.8)
    axis.axhline(OVERHEAD_GOAL, color="red", linewidth=0.8, linestyle="--",
                 label=f"goal {OVERHEAD_GOAL}")
    axis.set_xticks(x, kinds)
    low = min(v["min"] for v in ratios.values())
    axis.set(ylabel="HORQ-K / (K x bconv), min latencies", ylim=(min(0.95, low - 0.02), None),
             title="stack: HORQ-K latency / K bare LceBconv2d")
    axis.legend(fontsize=8, loc="upper left")


def plot(results, overhead=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(results) + bool(overhead)
    figure, axes = plt.subplots(rows, 2, figsize=(12, 4 * rows), squeeze=False)
    if overhead:
        _plot_overhead(axes[-1][0], overhead)
        axes[-1][1].set_axis_off()
    for row, (label, result) in enumerate(results.items()):
        latency, profiles = result["latency"], result["profiles"]
        kinds = list(latency)
        axis = axes[row][0]
        axis.bar(kinds, [latency[k]["median"] * 1e3 for k in kinds], label="median")
        axis.plot(kinds, [latency[k]["min"] * 1e3 for k in kinds], "k_", markersize=20,
                  label="min")
        axis.axhline(latency["float"]["median"] * 1e3, color="gray", linewidth=0.8)
        axis.set(ylabel="latency (ms)", title=f"{label}\nwhole-model latency")
        axis.legend(fontsize=8, loc="upper left")
        axis = axes[row][1]
        bottom = np.zeros(len(profiles))
        for kind in sorted({k for p in profiles.values() for k in p["by_kind_ms"]}):
            values = np.array([p["by_kind_ms"].get(kind, 0.0) for p in profiles.values()])
            axis.bar(list(profiles), values, bottom=bottom, label=kind)
            bottom += values
        axis.set(ylabel="summed one-operator time (ms)", ylim=(0, 1.35 * max(bottom, default=1)),
                 title=f"{label}\nper-operator profile")
        axis.legend(fontsize=7, loc="upper left")
    figure.suptitle("LCE interpreter on x86 (1 thread, indirect BGEMM, XNNPACK); not ARM",
                    fontsize=9)
    figure.tight_layout()
    return figure


def main(argv=None):
    args = parse_args(argv)
    command = command_line("horq_latency.py", argv)
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    with load_average() as load:
        results = {}
        networks = {
            f"{args.stack_channels}-channel 3x3 stack, 4 layers, "
            f"{args.stack_size}x{args.stack_size}": (
                lambda kind: stack_model(kind, args.stack_size, args.stack_channels,
                                         beta_form=args.beta_form), args.orders),
            f"ResNet-18, {args.resnet_size}x{args.resnet_size}": (
                lambda kind: resnet18(kind, args.resnet_size, args.resnet_width,
                                      beta_form=args.beta_form),
                args.resnet_orders),
        }
        for label, (build, orders) in (networks.items() if args.networks else ()):
            orders = sorted(set(orders))
            kinds = ["float", "bconv"] + [f"horq{order}" for order in orders]
            result = run_network(label, build, kinds, args, rng)
            result["orders"] = orders
            result["goals"] = goals(result["latency"], orders)
            results[label] = result
        overhead = run_overhead(args, rng) if args.overhead_orders else None
    wall = time.perf_counter() - start
    markdown = render_markdown(args, results, overhead, wall, load_note(load))
    print(markdown)
    data = {
        "settings": {k: v for k, v in vars(args).items() if k != "output_dir"},
        "interpreter": dataclasses.asdict(INTERPRETER),
        "networks": {label: {**r, "goals": {g: {s: {"value": v, "met": m}
                                                  for s, (v, m) in stats.items()}
                                              for g, stats in r["goals"].items()}}
                     for label, r in results.items()},
        "overhead": overhead, "load_average": load, "wall_s": wall,
    }
    write_results(args.output_dir, NAME, command=command, markdown=markdown, data=data,
                  figure=plot(results, overhead))
    return 0


if __name__ == "__main__":
    sys.exit(main())
