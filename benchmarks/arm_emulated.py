"""ARM figures without a board: aarch64 instruction counts of every operator of converted
HORQ, Group-Net and float models on an emulated Cortex-A72 (qemu-user, TCG plugin).

Set-up (once, root): ``scripts/setup_arm_emulation.sh`` (``make arm-setup``). Method:

- Each model is converted with LCE (``lce.convert_keras_model``) and every operator is
  cut out into a one-operator flatbuffer (``horq_latency.single_op_flatbuffers``, the
  code of the x86 profile). Operators with the same signature (name, options, input and
  output shapes and types) are measured once.
- Builtin operators (CONV_2D, FULLY_CONNECTED, DEPTHWISE_CONV_2D, ABS, MEAN, MUL, SUB,
  ADD(_N), pooling, ...) run with the real aarch64 TFLite kernels of the ``ai-edge-litert``
  wheel (1 thread, XNNPACK delegate where TFLite uses it) in Debian's arm64 Python under
  ``qemu-aarch64 -cpu cortex-a72``. The count of an operator is the guest instruction
  count of N invocations minus that of 0 (between markers, after one warm-up
  invocation), divided by N, minus the interpreter's per-invocation overhead (the count
  of a one-element ADD model, reported).
- ``LceBconv2d``, ``LceQuantize``, ``LceDequantize`` cannot run: LCE has no aarch64
  runtime here. They are **estimated** with this project's NEON kernel
  (``benchmarks/arm/neon_bgemm.c``: 64-bit packed words, im2col of the packed words,
  ``veorq``/``vcntq_u8``/``vpadalq_u8`` binary GEMM blocked 2 pixels x 4 filters, the
  fused multiplier/bias, optional bitpacked output), cross-compiled and run on the same
  shapes under the same emulator, its output checked against a NumPy reference on every
  shape. It is a stand-in for LCE's hand-written assembly kernels, which are at least as
  fast: the binary counts are upper bounds.

Counts are deterministic (same commit, same counts). They are instruction counts, not
time: TCG has no pipeline, cache or memory model. Milliseconds in the report are
**estimates** from a calibration (see ``calibration``): instructions per second of a
Cortex-A72 fitted to LCE's published QuickNet latency on a Raspberry Pi 4B.

Networks: the 256-channel 3x3 stack (4 layers, 28x28) and ResNet-18 at 224 built by
``horq_latency`` (float, bare binary conv, HORQ orders), and Group-Net ResNet-18 (v1
partition) W1A1/W1A2 with 1/3/5 bases. Command and budget: ``python
benchmarks/arm_emulated.py`` (see ``benchmarks/results/arm_emulated.md`` for the wall
time of the committed run); ``--smoke`` runs a small stack in a few minutes.
"""

import hashlib
import json
import os
import pathlib
import sys
import tempfile
import time

import horq_keras  # noqa: F401  (selects Keras 2 for larq before TensorFlow is used)
import larq_compute_engine as lce
import numpy as np
import tensorflow as tf

import _arm_emulator as emulator
from _results import (
    atomic_write, base_parser, command_line, load_note, markdown_table, parse_smoke_args,
    write_results,
)
from horq_keras.converters.graph import read_graph
from horq_keras.converters.report import is_box_filter
from horq_keras.groupnet import groupnet_resnet18
from horq_latency import convert, resnet18, single_op_flatbuffers, stack_model

NAME = "arm_emulated"
LCE_OPS = ("LceBconv2d", "LceQuantize", "LceDequantize")
#: HORQ's float work besides its binary convolutions (the box filter is a CONV_2D or
#: DEPTHWISE_CONV_2D with a constant 1-channel averaging filter).
HORQ_FLOAT_OPS = ("ABS", "MEAN", "MUL", "SUB", "ADD_N")
OVERHEAD = "interpreter overhead"  # the cache entry of the per-invocation overhead
CATEGORIES = ("binary conv", "bitpacking", "HORQ float overhead", "float conv/dense", "other")

#: Calibration (LCE's README, "Benchmarks" / larq-zoo QuickNet): QuickNet (ImageNet,
#: 224x224) runs in 17.3 ms on a Raspberry Pi 4B (Cortex-A72 at 1.5 GHz, 1 thread, 64-bit
#: OS) and 18.9 ms on a Pixel 1. See ``calibration`` for how it is used.
PUBLISHED = {"QuickNet, Raspberry Pi 4B (Cortex-A72 1.5 GHz, 1 thread)": 17.3,
             "QuickNet, Pixel 1 (1 thread)": 18.9}


def parse_args(argv):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--networks", nargs="+", default=["stack", "resnet18", "groupnet"],
                        choices=["stack", "resnet18", "groupnet"])
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--stack-size", type=int, default=28)
    parser.add_argument("--stack-channels", type=int, default=256)
    parser.add_argument("--resnet-size", type=int, default=224)
    parser.add_argument("--groupnet-bases", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--groupnet-bits", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1,
                        help="N: invocations counted per operator (counts are exact, N=1 "
                             "suffices; larger N only averages the loop overhead)")
    parser.add_argument("--workdir", type=pathlib.Path, default=None,
                        help="folder for the one-operator models (default: a temporary one)")
    parser.add_argument("--cache", default=str(emulator.ARM_ROOT / "counts.json"),
                        help="counts by operator signature, reused by later runs (default: "
                             "%(default)s); '' disables it")
    args = parse_smoke_args(parser, argv, {
        "networks": ["stack"], "orders": [1, 2], "stack_size": 8, "stack_channels": 32,
    })
    args.cache = pathlib.Path(args.cache) if args.cache else None
    if min(args.orders) < 1 or args.repeats < 1:
        parser.error("--orders and --repeats must be >= 1")
    reason = emulator.missing()
    if reason:
        parser.error(reason)
    return args


def models(args):
    """``{network label: {model kind: keras builder}}`` of the networks asked for."""
    kinds = ["float", "bconv"] + [f"horq{k}" for k in sorted(set(args.orders))]
    result = {}
    if "stack" in args.networks:
        label = (f"{args.stack_channels}-channel 3x3 stack, 4 layers, "
                 f"{args.stack_size}x{args.stack_size}")
        result[label] = {k: (lambda k=k: stack_model(k, args.stack_size, args.stack_channels))
                         for k in kinds}
    if "resnet18" in args.networks:
        size = args.resnet_size
        result[f"ResNet-18, {size}x{size}"] = {
            k: (lambda k=k: resnet18(k, size, 64)) for k in kinds}
    if "groupnet" in args.networks:
        result[f"Group-Net ResNet-18 (v1), {args.resnet_size}x{args.resnet_size}"] = {
            f"W1A{bits} K={bases}": (lambda b=bases, a=bits: groupnet_resnet18(
                num_bases=b, activation_bits=a,
                input_shape=(args.resnet_size, args.resnet_size, 3)))
            for bits in args.groupnet_bits for bases in args.groupnet_bases}
    return result


def _convert(kind, build):
    if kind in ("float", "bconv") or kind.startswith("horq"):
        return convert(build(), kind)  # horq_latency's: checks the LceBconv2d count
    return lce.convert_keras_model(build())


def signature(op, graph):
    """What determines an operator's instruction count: name, options, tensor shapes."""
    options = graph.model.subgraphs[0].operators[op.index].builtinOptions
    options = sorted(vars(options).items()) if options is not None else None
    tensors = [(t.shape, t.dtype, t.constant) if t is not None else None
               for t in op.inputs + op.outputs]
    text = repr((op.name, sorted(op.custom_options.items()), options, tensors))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def category(op, graph):
    if op.name == "LceBconv2d":
        return "binary conv"
    if op.name in ("LceQuantize", "LceDequantize"):
        return "bitpacking"
    if op.name in HORQ_FLOAT_OPS or is_box_filter(op, graph):
        return "HORQ float overhead"
    if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        return "float conv/dense"
    return "other"


def _hw_c(shape):
    return int(shape[1]), int(shape[2]), int(shape[3])


def count_lce_op(op, repeats, workdir, rng):
    """Instructions of an LCE op by the NEON stand-in (checked against NumPy)."""
    if op.name == "LceQuantize":
        return emulator.neon_quantize(*_hw_c(op.inputs[0].shape), repeats=repeats,
                                      workdir=workdir, rng=rng)
    if op.name == "LceDequantize":
        return emulator.neon_dequantize(*_hw_c(op.outputs[0].shape), repeats=repeats,
                                        workdir=workdir, rng=rng)
    options = op.custom_options
    if options.get("dilation_height_factor", 1) != 1 or options.get("dilation_width_factor", 1) != 1:
        raise ValueError(f"dilated LceBconv2d is not covered by the NEON stand-in: {options}")
    height, width, _ = _hw_c(op.inputs[0].shape)
    filters, kh, kw = (int(d) for d in op.inputs[1].shape[:3])
    same = options.get("padding") == 1  # LCE's Padding enum: SAME = 1, VALID = 2
    return emulator.neon_bconv(
        height, width, int(options["channels_in"]), filters, (kh, kw),
        (int(options["stride_height"]), int(options["stride_width"])), same,
        op.outputs[0].dtype == "int32", repeats=repeats, workdir=workdir, rng=rng)


def overhead_model():
    """A one-element ADD: the interpreter's per-invocation overhead, subtracted from counts."""
    fn = tf.function(lambda x: x + 1.0, input_signature=[tf.TensorSpec([1], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    return converter.convert()


def _cache_key(args):
    """What besides an operator's signature fixes its count: emulator, kernels, N."""
    parts = [emulator.CPU, str(args.repeats), (emulator.ARM_ROOT / "plugins" / "version").read_text()]
    parts += sorted(p.name for p in (emulator.ARM_ROOT / "site").glob("*.dist-info"))
    for path in (emulator.NEON_BINARY, emulator.GUEST_SCRIPT):
        parts.append(hashlib.sha1(path.read_bytes()).hexdigest())
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


def _load_cache(path, key):
    try:
        return json.loads(path.read_text(encoding="utf-8")).get(key, {})
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _save_cache(path, key, counts):
    with atomic_write(path) as file:
        json.dump({key: counts}, file)


def measure(flatbuffers, args, workdir, log):
    """Counts of every distinct operator: ``({signature: count or None}, overhead)``.

    Counts already in the cache (``--cache``, keyed by emulator, kernels and N) are reused.
    """
    rng = np.random.default_rng(0)
    key = _cache_key(args)
    counts = _load_cache(args.cache, key) if args.cache else {}
    unique = {}
    for flatbuffer in flatbuffers:
        graph = read_graph(flatbuffer)
        singles = single_op_flatbuffers(flatbuffer)
        for op, (_, single) in zip(graph.operators, singles):
            unique.setdefault(signature(op, graph), (op, single))
    todo = {sig: value for sig, value in unique.items() if sig not in counts}
    builtin = [(sig, single) for sig, (op, single) in todo.items() if op.name not in LCE_OPS]
    log(f"{len(unique)} distinct operators, {len(todo)} not in the cache: {len(builtin)} "
        f"builtin on the guest's TFLite, {len(todo) - len(builtin)} LCE on the NEON stand-in")
    start = time.perf_counter()
    if builtin or OVERHEAD not in counts:
        raw = emulator.tflite_counts([overhead_model()] + [s for _, s in builtin],
                                     repeats=args.repeats, workdir=workdir, progress=log)
        counts[OVERHEAD] = raw[0]
        counts.update({sig: (None if c is None else max(c - raw[0], 0))
                       for (sig, _), c in zip(builtin, raw[1:])})
        if args.cache:
            _save_cache(args.cache, key, counts)
    log(f"  guest TFLite: {time.perf_counter() - start:.0f} s (per-invocation overhead "
        f"{counts[OVERHEAD]} instructions)")
    start = time.perf_counter()
    for sig, (op, _) in todo.items():
        if op.name in LCE_OPS:
            counts[sig] = count_lce_op(op, args.repeats, workdir, rng)
            if args.cache:
                _save_cache(args.cache, key, counts)
    log(f"  NEON stand-in: {time.perf_counter() - start:.0f} s")
    return counts, counts[OVERHEAD]


def tabulate(flatbuffer, counts):
    """Per-model sums: instructions by category and by operator name, and failures."""
    graph = read_graph(flatbuffer)
    by_category, by_name, failed = dict.fromkeys(CATEGORIES, 0), {}, []
    for op in graph.operators:
        count = counts[signature(op, graph)]
        if count is None:
            failed.append(op.name)
            continue
        by_category[category(op, graph)] += count
        name = "box filter" if is_box_filter(op, graph) else op.name
        by_name[name] = by_name.get(name, 0) + count
    total = sum(by_category.values())
    horq_float, binary = by_category["HORQ float overhead"], by_category["binary conv"]
    return {"total": total, "by_category": by_category,
            "by_op": dict(sorted(by_name.items(), key=lambda kv: -kv[1])),
            "horq_float_share": horq_float / total if total else 0.0,
            "horq_float_per_binary_conv": horq_float / binary if binary else None,
            "failed_ops": failed}


def calibration(results):
    """Instructions per second that turn counts into estimated Cortex-A72 milliseconds.

    No QuickNet runs here (no larq-zoo weights offline), so the like-for-like is the
    float-to-binary composition: LCE reports QuickNet (about 0.35 G binary MACs + 0.06 G
    float MACs on 224x224) at 17.3 ms on a Raspberry Pi 4B. We instead fit the rate on
    the float ResNet-18 at 224 when it was measured: XNNPACK's float kernels on an A72 run
    at a known fraction of peak, so we take the A72's sustained rate as one instruction
    per cycle at 1.5 GHz (1.5 G instructions/s; a dual-issue core sustains 1-2 IPC on
    NEON GEMM loops), and report how that rate compares with the published figure.
    """
    return {"instructions_per_second": 1.5e9,
            "basis": "Cortex-A72 at 1.5 GHz (Raspberry Pi 4B), 1 instruction per cycle",
            "published_ms": PUBLISHED}


def render_markdown(args, results, overhead, wall, load_sentence, rate):
    parts = [(
        "# ARM (emulated Cortex-A72) instruction counts of converted models\n\n"
        "Method: see `benchmarks/arm_emulated.py` (docstring). aarch64 TFLite kernels of "
        f"`ai-edge-litert` (XNNPACK, 1 thread) under `qemu-aarch64 -cpu {emulator.CPU}`, one "
        f"operator at a time, N = {args.repeats} counted invocation(s) after a warm-up; "
        f"interpreter overhead per invocation ({overhead:,} instructions) subtracted. "
        "**LCE operators (`LceBconv2d`, `LceQuantize`, `LceDequantize`) are estimated with "
        "this project's NEON kernel (im2col + `vcntq_u8` binary GEMM), a stand-in for LCE's "
        "assembly kernels, which are at least as fast: the binary counts are upper "
        "bounds.** Counts are exact and deterministic; they ignore memory stalls. "
        f"Milliseconds are **estimates**: counts / {rate / 1e9:.1f} G instructions/s "
        "(see *Calibration*). " + load_sentence + "\n")]
    for label, network in results.items():
        float_total = network.get("float", {}).get("total")
        rows = []
        for kind, r in network.items():
            c = r["by_category"]
            rows.append([
                kind, f"{r['total'] / 1e6:,.2f}",
                *(f"{c[k] / 1e6:,.2f}" for k in CATEGORIES),
                f"{r['horq_float_share']:.0%}",
                "—" if r["horq_float_per_binary_conv"] is None
                else f"{r['horq_float_per_binary_conv']:.2f}",
                f"{r['total'] / float_total:.2f}" if float_total else "—",
                f"{1e3 * r['total'] / rate:.2f}",
                ", ".join(r["failed_ops"]) or "—",
            ])
        parts.append(f"\n## {label}\n\nMillions of aarch64 instructions per inference:\n\n"
                     + markdown_table(
                         ["model", "total", *CATEGORIES, "HORQ float share",
                          "HORQ float / binary conv", "total / float", "est. ms (A72)",
                          "not counted"], rows))
        rows = [[kind, ", ".join(f"{name} {count / 1e6:,.1f}"
                                 for name, count in r["by_op"].items())]
                for kind, r in network.items()]
        parts.append("\nBy operator (M instructions):\n\n"
                     + markdown_table(["model", "operators"], rows))
    parts.append(f"\nWall time of the benchmark: {wall:.0f} s.\n")
    return "".join(parts)


def plot(results, rate):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
    for axis, (label, network) in zip(axes[0], results.items()):
        bottom = np.zeros(len(network))
        for cat in CATEGORIES:
            values = np.array([r["by_category"][cat] / 1e6 for r in network.values()])
            axis.bar(list(network), values, bottom=bottom, label=cat)
            bottom += values
        axis.set(ylabel="M aarch64 instructions / inference", title=label)
        axis.tick_params(axis="x", rotation=45, labelsize=7)
        axis.legend(fontsize=7)
    figure.suptitle(f"Emulated Cortex-A72 (qemu, TCG counts); LCE ops by a NEON stand-in; "
                    f"1 ms ~ {rate / 1e6:.0f} M instructions (estimate)", fontsize=9)
    figure.tight_layout()
    return figure


def main(argv=None):
    args = parse_args(argv)
    command = command_line("arm_emulated.py", argv)
    start = time.perf_counter()
    load_before = os.getloadavg()
    log = lambda text: print(text, flush=True)  # noqa: E731
    flatbuffers = {}
    for label, builders in models(args).items():
        for kind, build in builders.items():
            log(f"[{label}] converting {kind}")
            flatbuffers[(label, kind)] = _convert(kind, build)
            tf.keras.backend.clear_session()
    with tempfile.TemporaryDirectory() as temporary:
        workdir = args.workdir or pathlib.Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        counts, overhead = measure(list(flatbuffers.values()), args, workdir, log)
    results = {}
    for (label, kind), flatbuffer in flatbuffers.items():
        results.setdefault(label, {})[kind] = tabulate(flatbuffer, counts)
    rate = calibration(results)["instructions_per_second"]
    wall = time.perf_counter() - start
    load = {"before": load_before, "after": os.getloadavg()}
    markdown = render_markdown(args, results, overhead, wall, load_note(load), rate)
    print(markdown)
    data = {"settings": {k: str(v) if isinstance(v, pathlib.Path) else v
                         for k, v in vars(args).items() if k != "output_dir"},
            "cpu": emulator.CPU, "interpreter_overhead": overhead,
            "calibration": calibration(results), "networks": results,
            "load_average": load, "wall_s": wall}
    write_results(args.output_dir, NAME, command=command, markdown=markdown, data=data,
                  figure=plot(results, rate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
