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
  (``benchmarks/arm/neon_bgemm.c``: 64-bit packed words, filters packed 8 output channels
  together, an indirect binary GEMM (pointers to the input rows of each receptive field,
  no im2col) blocked 2 registers x 8 channels (2 pixels, or 4 with 64 channels or fewer:
  two pixels' words per register), ``veorq``/``vcntq_u8``/``vpadalq_u8``, the
  multiplier/bias and the optional bitpacking fused in the store; a 1x1 convolution with
  up to 256 channels keeps a group's filters in registers while the pixels stream past
  and sums its single step's counts as bytes), cross-compiled and run
  on the same shapes under the same emulator, its output checked against a NumPy
  reference on every shape. It is a stand-in for LCE's hand-written assembly kernels;
  each binary layer's count is set beside an ideal kernel's (see :func:`layer_rows`).

Counts are deterministic (same commit, same counts). They are instruction counts, not
time: TCG has no pipeline, cache or memory model. Milliseconds in the report are
**estimates** from a calibration (see :func:`calibration`): the count of the bare-binary
ResNet-18 at 224 (like Bi-RealNet) fitted to LCE's published Bi-RealNet latency on a
Pixel 1, scaled to a Raspberry Pi 4B by LCE's published QuickNet latencies on both.

Networks: the 256-channel 3x3 stack (4 layers, 28x28) and ResNet-18 at 224 built by
``horq_latency`` (float, bare binary conv, HORQ orders), and Group-Net ResNet-18 (v1
partition) W1A1/W1A2 with 1/3/5 bases, converted as ``horq_keras.converters.convert``
does (``deployable``: k-bit activations as binary bit planes), beside the float ResNet-18.
Commands and budget (2-core x86 shared with the test suite, load 2-4, empty count cache):
``python benchmarks/arm_emulated.py --networks stack`` 6 min; ``--networks resnet18
--orders 1 2 3 --beta-forms pixel --name arm_emulated_resnet18`` 10 min; ``--networks
groupnet --name arm_emulated_groupnet`` 10 min (conversions of a ResNet take 10 s to 3 min
by load). Counts are cached by operator signature (``--cache``), so a rerun mostly pays
the conversions. ``--smoke`` runs a small stack in a few minutes.
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
from _flatbuffers import single_op_flatbuffers
from _models import convert, resnet18, stack_model
from _results import (
    base_parser, command_line, load_note, markdown_table, parse_smoke_args, write_results,
)
from horq_keras.converters.conversion import deployable
from horq_keras.converters.report import is_box_filter
from horq_keras.groupnet import groupnet_resnet18
from horq_keras.files import atomic_write_text
from horq_keras.tflite.arm_cost import (
    BIREALNET_PIXEL1_MS, OVERHEAD, QUICKNET_MS, calibration, signature,
)
from horq_keras.tflite.graph import read_graph
from horq_keras.tflite.macs import bconv_input_channels, operator_macs

NAME = "arm_emulated"
LCE_OPS = ("LceBconv2d", "LceQuantize", "LceDequantize")
#: HORQ's float work besides its binary convolutions, with the MEANs of |R|
#: (:func:`is_beta_mean`) and the box filter (a CONV_2D with a constant 1-channel
#: averaging filter).
HORQ_FLOAT_OPS = ("ABS", "MUL", "SUB", "ADD_N")
CATEGORIES = ("binary conv", "bitpacking", "HORQ float overhead", "float conv/dense", "other")



def parse_args(argv):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--networks", nargs="+", default=["stack", "resnet18", "groupnet"],
                        choices=["stack", "resnet18", "groupnet"])
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--beta-forms", nargs="+", choices=["pixel", "sample"],
                        default=["pixel", "sample"], help="beta forms of the HORQ models")
    parser.add_argument("--stack-size", type=int, default=28)
    parser.add_argument("--stack-channels", type=int, default=256)
    parser.add_argument("--resnet-size", type=int, default=224)
    parser.add_argument("--groupnet-bases", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--groupnet-bits", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--name", default=NAME,
                        help="file stem of the results (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="N: invocations counted per operator (counts are exact, N=1 "
                             "suffices; larger N only averages the loop overhead)")
    parser.add_argument("--workdir", type=pathlib.Path, default=None,
                        help="folder for the one-operator models (default: a temporary one)")
    parser.add_argument("--cache", default=str(emulator.ARM_ROOT / "counts.json"),
                        help="counts by operator signature, reused by later runs (default: "
                             "%(default)s); '' disables it")
    args = parse_smoke_args(parser, argv, {
        "networks": ["stack"], "orders": [1], "beta_forms": ["pixel"], "stack_size": 8,
        "stack_channels": 32, "resnet_size": 32,
    })
    args.cache = pathlib.Path(args.cache) if args.cache else None
    if min(args.orders) < 1 or args.repeats < 1:
        parser.error("--orders and --repeats must be >= 1")
    reason = emulator.missing()
    if reason:
        parser.error(reason)
    return args


def _kinds(args):
    """``(label, horq_latency kind, beta form)`` of every model of a stack or ResNet."""
    kinds = [("float", "float", "pixel"), ("bconv", "bconv", "pixel")]
    for form in args.beta_forms:
        kinds += [(f"horq{k}" + ("" if form == "pixel" else f" {form}"), f"horq{k}", form)
                  for k in sorted(set(args.orders))]
    return kinds


def models(args):
    """``{network label: {model label: (horq_latency kind or None, keras builder)}}``."""
    result = {}
    if "stack" in args.networks:
        label = (f"{args.stack_channels}-channel 3x3 stack, 4 layers, "
                 f"{args.stack_size}x{args.stack_size}")
        result[label] = {name: (kind, lambda k=kind, f=form: stack_model(
            k, args.stack_size, args.stack_channels, beta_form=f)) for name, kind, form in _kinds(args)}
    if "resnet18" in args.networks:
        size = args.resnet_size
        result[f"ResNet-18, {size}x{size}"] = {
            name: (kind, lambda k=kind, f=form: resnet18(k, size, 64, beta_form=f))
            for name, kind, form in _kinds(args)}
    if "groupnet" in args.networks:
        size = args.resnet_size
        # The float ResNet-18 of the "resnet18" network, for the ratios to float.
        float_resnet = {"float": ("float", lambda: resnet18("float", size, 64))}
        result[f"Group-Net ResNet-18 (v1), {size}x{size}"] = {**float_resnet, **{
            f"W1A{bits} K={bases}": (None, lambda b=bases, a=bits: groupnet_resnet18(
                num_bases=b, activation_bits=a, input_shape=(size, size, 3)))
            for bits in args.groupnet_bits for bases in args.groupnet_bases}}
    return result


def _convert(kind, build):
    if kind is None:  # as horq_keras.converters.convert does: k-bit activations as bit planes
        return lce.convert_keras_model(deployable(build())[0])
    return convert(build(), kind)  # horq_latency's: checks the LceBconv2d count


def is_beta_mean(op, graph):
    """A MEAN of |R| (eq. 17: βᵢ = mean|Rᵢ₋₁|), directly or after a height-width mean of it
    (``horq_keras.quantizers.mean_abs``). A network's global average pooling is a MEAN too,
    but of activations: it is not HORQ's work."""
    if op.name != "MEAN":
        return False
    producer = graph.producer(op.inputs[0])
    return producer is not None and (producer.name == "ABS" or is_beta_mean(producer, graph))


def category(op, graph):
    if op.name == "LceBconv2d":
        return "binary conv"
    if op.name in ("LceQuantize", "LceDequantize"):
        return "bitpacking"
    if op.name in HORQ_FLOAT_OPS or is_beta_mean(op, graph) or is_box_filter(op, graph):
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
    strides = (int(options["stride_height"]), int(options["stride_width"]))
    # Padding from the shapes (SAME: output = ceil(input / stride)), not from the enum.
    same = int(op.outputs[0].shape[1]) == -(-height // strides[0]) and (kh, kw) != (1, 1)
    return emulator.neon_bconv(
        height, width, int(options["channels_in"]), filters, (kh, kw), strides, same,
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
    """Add ``counts`` to the cache file (what another run stored meanwhile is kept)."""
    atomic_write_text(path, json.dumps({key: {**_load_cache(path, key), **counts}}))


def measure(flatbuffers, args, workdir, log):
    """Counts of every distinct operator: ``({signature: count or None}, overhead)``.

    Counts already in the cache (``--cache``, keyed by emulator, kernels and N) are reused.
    """
    rng = np.random.default_rng(0)
    emulator.build_neon_binary()
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
        kind = category(op, graph)
        by_category[kind] += count
        name = ("box filter" if is_box_filter(op, graph)
                else "MEAN (pooling)" if op.name == "MEAN" and kind == "other"
                else op.name)
        by_name[name] = by_name.get(name, 0) + count
    total = sum(by_category.values())
    horq_float, binary = by_category["HORQ float overhead"], by_category["binary conv"]
    return {"total": total, "by_category": by_category,
            "by_op": dict(sorted(by_name.items(), key=lambda kv: -kv[1])),
            "horq_float_share": horq_float / total if total else 0.0,
            "horq_float_per_binary_conv": horq_float / binary if binary else None,
            "failed_ops": failed}


def layer_shape(op):
    """``(H, W, C, O, KH, KW, Ho, Wo)`` of a CONV_2D or LceBconv2d: the key that pairs a
    binary layer with the float convolution of the same shape."""
    out_channels, kh, kw, channels = (int(d) for d in op.inputs[1].shape)
    if op.name == "LceBconv2d":
        channels = bconv_input_channels(op)
    height, width = (int(d) for d in op.inputs[0].shape[1:3])
    out_h, out_w = (int(d) for d in op.outputs[0].shape[1:3])
    return height, width, channels, out_channels, kh, kw, out_h, out_w


def shape_label(shape):
    height, width, channels, out_channels, kh, kw, out_h, out_w = shape
    return f"{height}x{width}x{channels} -> {out_h}x{out_w}x{out_channels}, {kh}x{kw}"


def layer_row(macs, binary, floating):
    """One layer's instructions beside the ideal kernels' (``emulator.ideal_*``).

    ``binary``: the NEON stand-in's count of the LceBconv2d; ``floating``: XNNPACK's count
    of the float CONV_2D of the same shape (None where no float model has one).
    Efficiency = ideal / actual; ``float_per_binary`` = floating / binary.
    """
    binary_ideal = emulator.ideal_binary_instructions(macs)
    row = {"macs": macs, "binary": binary, "binary_ideal": binary_ideal,
           "binary_efficiency": binary_ideal / binary,
           "float": floating, "float_ideal": None, "float_efficiency": None,
           "float_per_binary": None}
    if floating:
        row["float_ideal"] = emulator.ideal_float_instructions(macs)
        row["float_efficiency"] = row["float_ideal"] / floating
        row["float_per_binary"] = floating / binary
    return row


def layer_rows(flatbuffers, counts):
    """``{shape label: layer_row}`` of every distinct binary layer shape (and output kind:
    float or bitpacked) of a network.

    ``flatbuffers``: ``{model label: flatbuffer}``; the float convolutions come from the
    model labelled "float". Layers whose binary count failed are left out.
    """
    binary, floating = {}, {}
    for kind, flatbuffer in flatbuffers.items():
        graph = read_graph(flatbuffer)
        for op in graph.operators:
            count = counts[signature(op, graph)]
            if op.name == "LceBconv2d" and count is not None:
                packed = op.outputs[0].dtype == "int32"
                binary.setdefault((layer_shape(op), packed), (operator_macs(op)[1], count))
            elif kind == "float" and op.name == "CONV_2D":
                floating.setdefault(layer_shape(op), count)
    return {shape_label(shape) + (", bitpacked output" if packed else ""):
            layer_row(macs, count, floating.get(shape))
            for (shape, packed), (macs, count) in binary.items()}


def _layer_table(rows):
    def millions(value):
        return "—" if value is None else f"{value / 1e6:,.2f}"

    def ratio(value, form, unit=""):
        return "—" if value is None else format(value, form) + unit

    return markdown_table(
        ["layer (in -> out, kernel)", "binary MACs (M)", "ideal binary", "stand-in",
         "stand-in efficiency", "float conv (XNNPACK)", "ideal float", "XNNPACK efficiency",
         "float / stand-in"],
        [[label, millions(r["macs"]), millions(r["binary_ideal"]), millions(r["binary"]),
          ratio(r["binary_efficiency"], ".0%"), millions(r["float"]),
          millions(r["float_ideal"]), ratio(r["float_efficiency"], ".0%"),
          ratio(r["float_per_binary"], ".1f", "x")]
         for label, r in rows.items()])


def render_markdown(args, results, layers, overhead, wall, load_sentence, calibrated):
    rate = calibrated["instructions_per_second"]
    parts = [(
        "# ARM (emulated Cortex-A72) instruction counts of converted models\n\n"
        "Method: see `benchmarks/arm_emulated.py` (docstring). aarch64 TFLite kernels of "
        f"`ai-edge-litert` (XNNPACK, 1 thread) under `qemu-aarch64 -cpu {emulator.CPU}`, one "
        f"operator at a time, N = {args.repeats} counted invocation(s) after a warm-up; "
        f"interpreter overhead per invocation ({overhead:,} instructions) subtracted. "
        "**LCE operators (`LceBconv2d`, `LceQuantize`, `LceDequantize`) are estimated with "
        "this project's NEON kernel (indirect `vcntq_u8` binary GEMM, 8 output channels at a "
        "time), a stand-in for LCE's assembly kernels; *Per layer* sets each layer beside "
        "an ideal kernel.** Counts are exact and deterministic; they ignore memory stalls. "
        f"Milliseconds are **estimates** for a Raspberry Pi 4B (Cortex-A72, 1 thread): "
        f"counts / {rate / 1e9:.2f} G instructions/s (see *Calibration*). "
        + load_sentence + "\n")]
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
        note = ""
        if {"float", "bconv"} <= set(network):
            binary = network["bconv"]["by_category"]
            same_layers = (network["float"]["by_category"]["float conv/dense"]
                           - binary["float conv/dense"])
            note = (f"\nThe layers that are binary in `bconv`, as float convolutions (XNNPACK) "
                    f"vs as binary ones (NEON stand-in, bitpacking included): "
                    f"{same_layers / (binary['binary conv'] + binary['bitpacking']):.1f}x fewer "
                    f"instructions binary (LCE's paper, MLSys 2021: LCE's binary convolutions "
                    f"run 8.5-18.5x faster than float ones on a Pixel 1).\n")
        parts.append(f"\n## {label}\n\nMillions of aarch64 instructions per inference:\n\n"
                     + markdown_table(
                         ["model", "total", *CATEGORIES, "HORQ float share",
                          "HORQ float / binary conv", "total / float", "est. ms (RPi 4B)",
                          "not counted"], rows) + note)
        parts.append(
            "\nPer binary layer shape (M instructions; once per distinct shape). Ideal "
            "kernels: binary, one EOR, one CNT and one accumulate per 128 binary MACs (128-bit "
            "NEON registers; loads, reductions and stores amortised away); float, one FMLA "
            "per 4 MACs. Efficiency = ideal / counted; float / stand-in = XNNPACK's float "
            "CONV_2D of the same shape over the binary one:\n\n" + _layer_table(layers[label]))
        rows = [[kind, ", ".join(f"{name} {count / 1e6:,.2f}"
                                 for name, count in r["by_op"].items())]
                for kind, r in network.items()]
        parts.append("\nBy operator (M instructions):\n\n"
                     + markdown_table(["model", "operators"], rows))
    parts.append(
        "\n## Calibration (estimates)\n\n"
        f"The bare-binary ResNet-18 at {args.resnet_size}x{args.resnet_size} (a binary 3x3 "
        "`LceBconv2d` per block conv, float stem, float 1x1 downsampling shortcuts and "
        "classifier: the like for like of Bi-RealNet) counts "
        f"{calibrated['calibration_model_instructions'] / 1e6:,.0f} M instructions here. "
        f"LCE's README gives Bi-RealNet {BIREALNET_PIXEL1_MS} ms on a Pixel 1 (1 thread; "
        "README of March 2020) and QuickNet "
        f"{QUICKNET_MS['Raspberry Pi 4B']} ms on a Raspberry Pi 4B vs "
        f"{QUICKNET_MS['Pixel 1']} ms on a Pixel 1 (1 thread; current README): "
        f"{calibrated['pixel1_instructions_per_second'] / 1e9:.2f} G instructions/s on a "
        f"Pixel 1, {rate / 1e9:.2f} G/s on the Pi ({rate / 1.5e9:.2f} instructions per cycle "
        "at its 1.5 GHz; a Cortex-A72 issues up to 3 per cycle). The NEON stand-in spends more "
        "instructions on binary work than LCE's kernels, so the fitted rate is high and the "
        "float parts' milliseconds are on the low side: every millisecond here is an "
        "estimate, for ranking, not a measurement.\n")
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
                    f"Raspberry Pi 4B: 1 ms ~ {rate / 1e6:.0f} M instructions (estimate)",
                    fontsize=9)
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
        for name, (kind, build) in builders.items():
            started = time.perf_counter()
            flatbuffers[(label, name)] = _convert(kind, build)
            log(f"[{label}] converted {name} in {time.perf_counter() - started:.0f} s")
            tf.keras.backend.clear_session()
    size = args.resnet_size
    calibration_key = (f"ResNet-18, {size}x{size}", "bconv")
    if calibration_key not in flatbuffers:
        log(f"[calibration] converting the bare-binary ResNet-18 at {size}x{size}")
        calibration_key = ("calibration", "bconv")
        flatbuffers[calibration_key] = convert(resnet18("bconv", size, 64), "bconv")
    with tempfile.TemporaryDirectory() as temporary:
        workdir = args.workdir or pathlib.Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        counts, overhead = measure(list(flatbuffers.values()), args, workdir, log)
    results, by_network = {}, {}
    for (label, kind), flatbuffer in flatbuffers.items():
        results.setdefault(label, {})[kind] = tabulate(flatbuffer, counts)
        by_network.setdefault(label, {})[kind] = flatbuffer
    layers = {label: layer_rows(network, counts) for label, network in by_network.items()
              if label != "calibration"}
    calibrated = calibration(results[calibration_key[0]]["bconv"]["total"])
    results.pop("calibration", None)
    rate = calibrated["instructions_per_second"]
    wall = time.perf_counter() - start
    load = {"before": load_before, "after": os.getloadavg()}
    markdown = render_markdown(args, results, layers, overhead, wall, load_note(load), calibrated)
    print(markdown)
    data = {"settings": {k: str(v) if isinstance(v, pathlib.Path) else v
                         for k, v in vars(args).items() if k != "output_dir"},
            "cpu": emulator.CPU, "interpreter_overhead": overhead,
            "calibration": calibrated, "networks": results, "layers": layers,
            "load_average": load, "wall_s": wall}
    write_results(args.output_dir, args.name, command=command, markdown=markdown, data=data,
                  figure=plot(results, rate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
