"""HORQ Table 2 and Figure 8: speed-up of an order-K binary convolution over a float one,
theoretical (operation counts) and measured with LCE's interpreter on this machine.

Theoretical speed-up, XNOR-Net's count (Rastegari et al., 2016, §3.3) for K binary
convolutions: a convolution with ``c`` input channels, a ``k x k`` filter
(``N_W = k^2``) and ``N_I`` output positions costs ``c N_W N_I`` float multiply-adds. Its
order-K HORQ form costs K binary convolutions, each ``c N_W N_I`` binary operations done
64 per instruction, plus ``N_I`` float multiplications by its beta scale::

    S_K = c N_W N_I / (K (c N_W N_I / 64 + N_I)) = 64 c N_W / (K (c N_W + 64))

Order 1 is XNOR-Net's speed-up (62.3x for c = 256, 3x3); order K divides it by K. The
count ignores the float work of the residual bases (eq. 16–17: one ``|R|``, mean and
subtraction per order over the input) and the cost of bitpacking.

Measured: one layer at batch 1, ``--size`` x ``--size`` input, ``padding="same"``,
converted with ``lce.convert_keras_model`` and run by LCE's interpreter (``LceInterpreter``) with
1 thread, ``use_indirect_bgemm=True``, ``use_xnnpack=True`` (LCE's fastest x86 path):
``HORQConv2D`` (pixel beta form, which converts to K ``LceBconv2d``) of order 1–4, a bare
binary convolution (larq ``QuantConv2D`` with ``ste_sign`` inputs and
``magnitude_aware_sign`` weights: one ``LceBconv2d``, no beta, the floor of any binary
layer) and the float ``Conv2D`` of the same shape. Repeats are interleaved over all
models (each repeat times every model once), and the speed-up is the ratio of median
latencies. LCE's optimized binary kernels are aarch64/arm32 assembly; x86 runs portable
C++ kernels, so these measured figures are NOT what an ARM board shows (there, binary
convolutions are several times faster relative to float). They show what HORQ costs on
x86 relative to a bare binary convolution and to float.

Command and budget: ``python benchmarks/horq_speedup.py`` takes under a minute on an
unloaded 2-core x86 CPU (conversion of 42 single-layer models, then 30 interleaved
repeats; about 4 minutes when other jobs share the cores, and noisier);
``--smoke`` runs in seconds. Results: ``benchmarks/results/horq_speedup.{md,json,png}``.
"""

import functools
import sys
import time

import horq_keras  # noqa: F401  (selects Keras 2 for larq before TensorFlow is used)
import larq as lq
import larq_compute_engine as lce
import numpy as np
import tensorflow as tf

from _results import (
    base_parser, command_line, load_note, markdown_table, parse_smoke_args, write_results,
)
from _timing import load_average, time_interleaved
from horq_keras.layers import HORQConv2D
from horq_keras.tflite.graph import op_counts
from horq_keras.tflite.runner import LceInterpreter

NAME = "horq_speedup"

#: Bits per binary instruction word assumed by the theoretical count (XNOR-Net §3.3).
WORD_BITS = 64


def theoretical_speedup(order, channels, filter_size, word_bits=WORD_BITS):
    """``S_K = 64 c N_W / (K (c N_W + 64))`` with ``N_W = filter_size ** 2`` (see module doc)."""
    n_w = filter_size**2
    return word_bits * channels * n_w / (order * (channels * n_w + word_bits))


def parse_args(argv):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--filter-sizes", type=int, nargs="+", default=[1, 3, 5, 7],
                        help="filter sizes swept at --channels-fixed channels")
    parser.add_argument("--channels", type=int, nargs="+", default=[64, 128, 256, 512],
                        help="channel counts (in = out) swept at --filter-fixed")
    parser.add_argument("--channels-fixed", type=int, default=256)
    parser.add_argument("--filter-fixed", type=int, default=3)
    parser.add_argument("--size", type=int, default=14, help="input height and width")
    parser.add_argument("--repeats", type=int, default=30)
    args = parse_smoke_args(parser, argv, {"orders": [1, 2], "filter_sizes": [3],
                                           "channels": [64], "channels_fixed": 64, "size": 6,
                                           "repeats": 3})
    for order in args.orders:
        if order < 1:
            parser.error(f"--orders must be >= 1; got {order}")
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    return args


def _layer(kind, channels, filter_size):
    """The layer measured for ``kind``: "float", "bconv" or "horq<K>"."""
    if kind == "float":
        return tf.keras.layers.Conv2D(channels, filter_size, padding="same", use_bias=False)
    if kind == "bconv":
        return lq.layers.QuantConv2D(
            channels, filter_size, padding="same", pad_values=1.0, use_bias=False,
            input_quantizer="ste_sign", kernel_quantizer="magnitude_aware_sign",
            kernel_constraint="weight_clip",
        )
    return HORQConv2D(channels, filter_size, order=int(kind[4:]), padding="same")


def convert(kind, channels, filter_size, size):
    """Convert a one-layer model; check it holds the expected number of binary convs."""
    inputs = tf.keras.Input((size, size, channels))
    flatbuffer = lce.convert_keras_model(
        tf.keras.Model(inputs, _layer(kind, channels, filter_size)(inputs))
    )
    expected = {"float": 0, "bconv": 1}[kind] if kind in ("float", "bconv") else int(kind[4:])
    found = op_counts(flatbuffer)["LceBconv2d"]
    if found != expected:
        raise RuntimeError(f"{kind} ({channels} ch, {filter_size}x{filter_size}) converted "
                           f"to {found} LceBconv2d ops, expected {expected}")
    return flatbuffer


def measure(configs, kinds, size, repeats):
    """Median and minimum latency (s) of every (config, kind), repeats interleaved."""
    calls = {}
    for channels, filter_size in configs:
        for kind in kinds:
            interpreter = LceInterpreter(convert(kind, channels, filter_size, size))
            inputs = [np.random.default_rng(0).standard_normal(
                (1, size, size, channels)).astype(np.float32)]
            calls[(channels, filter_size, kind)] = functools.partial(interpreter.invoke, inputs)
        print(f"converted {channels} ch, {filter_size}x{filter_size}", flush=True)
    samples = time_interleaved(calls, repeats)
    return {key: {"median": float(np.median(values)), "min": float(np.min(values))}
            for key, values in samples.items()}


def sweep_rows(args, latency, configs):
    """One record per (channels, filter size, order): theoretical and measured speed-ups."""
    rows = []
    for channels, filter_size in configs:
        float_s = latency[(channels, filter_size, "float")]
        bconv_s = latency[(channels, filter_size, "bconv")]
        for order in args.orders:
            horq_s = latency[(channels, filter_size, f"horq{order}")]
            rows.append({
                "channels": channels, "filter_size": filter_size, "order": order,
                "theoretical_speedup": theoretical_speedup(order, channels, filter_size),
                "float_ms": 1e3 * float_s["median"], "bconv_ms": 1e3 * bconv_s["median"],
                "horq_ms": 1e3 * horq_s["median"],
                "measured_speedup": float_s["median"] / horq_s["median"],
                "bconv_speedup": float_s["median"] / bconv_s["median"],
                "measured_speedup_best": float_s["min"] / horq_s["min"],
                "bconv_speedup_best": float_s["min"] / bconv_s["min"],
            })
    return rows


def _select(rows, **fixed):
    return [row for row in rows if all(row[key] == value for key, value in fixed.items())]


def render_markdown(args, rows, wall, load_sentence):
    fixed_c, fixed_k = args.channels_fixed, args.filter_fixed
    table2 = markdown_table(
        ["Order K", "Theoretical speed-up", "Measured speed-up (LCE, x86, medians)",
         "Measured (best of repeats)", "HORQ latency (ms)", "Float latency (ms)",
         "Bare bconv latency (ms)"],
        [[row["order"], f"{row['theoretical_speedup']:.1f}x", f"{row['measured_speedup']:.2f}x",
          f"{row['measured_speedup_best']:.2f}x", f"{row['horq_ms']:.3f}",
          f"{row['float_ms']:.3f}", f"{row['bconv_ms']:.3f}"]
         for row in _select(rows, channels=fixed_c, filter_size=fixed_k)],
    )

    def sweep(key, values, **fixed):
        header = [key.replace("_", " ")] + [f"K={order} theory / measured"
                                             for order in args.orders] + ["bare bconv measured"]
        body = []
        for value in values:
            own = _select(rows, **{key: value}, **fixed)
            body.append([value] + [f"{row['theoretical_speedup']:.1f}x / "
                                   f"{row['measured_speedup']:.2f}x" for row in own]
                        + [f"{own[0]['bconv_speedup']:.2f}x"])
        return markdown_table(header, body)

    return (
        "# HORQ Table 2 and Figure 8: speed-up over float by order\n\n"
        "Theoretical: `S_K = 64 c N_W / (K (c N_W + 64))` — XNOR-Net's count (§3.3: a "
        "float conv is `c N_W N_I` multiply-adds; a binary conv is `c N_W N_I / 64` word "
        "operations plus `N_I` scalings) times K binary convolutions for order K "
        "(`N_W` = filter area, `c` = input channels, `N_I` = output positions, which "
        "cancel). It ignores the residual bases' float work and bitpacking.\n\n"
        f"Measured: one layer, batch 1, {args.size}x{args.size} input, `padding=\"same\"`, "
        "channels in = out, LCE 0.16 interpreter with 1 thread, `use_indirect_bgemm=True`, "
        "`use_xnnpack=True`; `HORQConv2D` (pixel beta form: K `LceBconv2d` plus the float "
        "residual/beta ops) vs the float `Conv2D` of the same shape; median of "
        f"{args.repeats} repeats interleaved over all models (latencies are medians; "
        "\"best of repeats\" divides the minima, the least disturbed by other processes). "
        "\"Bare bconv\" is a single `LceBconv2d` (larq `QuantConv2D`, `ste_sign` inputs, "
        f"no beta). {load_sentence}\n\n"
        "**These are x86 measurements. LCE's optimized binary kernels are ARM (aarch64/"
        "arm32) assembly; on x86 LCE runs portable C++ kernels against XNNPACK's highly "
        "tuned float convolution, so measured speed-ups here are far below what an ARM "
        "board gives and far below the theoretical counts. Do not read them as ARM "
        "figures.**\n\n"
        f"## Table 2 analogue: {fixed_c} channels, {fixed_k}x{fixed_k} filter\n\n{table2}\n"
        f"## Figure 8 analogue: speed-up vs filter size ({fixed_c} channels)\n\n"
        f"{sweep('filter_size', args.filter_sizes, channels=fixed_c)}\n"
        f"## Figure 8 analogue: speed-up vs channels ({fixed_k}x{fixed_k} filter)\n\n"
        f"{sweep('channels', args.channels, filter_size=fixed_k)}\n"
        f"Plot: `{NAME}.png`. Wall time of the benchmark: {wall:.0f} s.\n"
    )


def plot(args, rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    fixed_c, fixed_k = args.channels_fixed, args.filter_fixed
    table = _select(rows, channels=fixed_c, filter_size=fixed_k)
    positions = np.arange(len(table))
    axes[0].bar(positions - 0.2, [row["theoretical_speedup"] for row in table], 0.4,
                label="theoretical")
    axes[0].bar(positions + 0.2, [row["measured_speedup"] for row in table], 0.4,
                label="measured (LCE, x86)")
    axes[0].set(xticks=positions, xticklabels=[f"K={row['order']}" for row in table],
                yscale="log", ylabel="speed-up over float",
                title=f"Table 2: {fixed_c} ch, {fixed_k}x{fixed_k}")
    for axis, key, values, fixed in (
        (axes[1], "filter_size", args.filter_sizes, {"channels": fixed_c}),
        (axes[2], "channels", args.channels, {"filter_size": fixed_k}),
    ):
        for order in args.orders:
            own = [_select(rows, order=order, **{key: value}, **fixed)[0] for value in values]
            (line,) = axis.plot(values, [row["theoretical_speedup"] for row in own], "--",
                                label=f"K={order} theoretical")
            axis.plot(values, [row["measured_speedup"] for row in own], "o-",
                      color=line.get_color(), label=f"K={order} measured")
        bconv = [_select(rows, order=args.orders[0], **{key: value}, **fixed)[0]["bconv_speedup"]
                 for value in values]
        axis.plot(values, bconv, "k^:", label="bare bconv measured")
        axis.axhline(1.0, color="gray", linewidth=0.8)
        axis.set(xlabel=key.replace("_", " "), ylabel="speed-up over float", yscale="log",
                 xticks=values)
    axes[2].set_xscale("log", base=2)
    axes[2].set_xticks(args.channels, [str(c) for c in args.channels])
    axes[1].set_title(f"Figure 8: vs filter size ({fixed_c} ch)")
    axes[2].set_title(f"Figure 8: vs channels ({fixed_k}x{fixed_k})")
    axes[0].legend(fontsize=8)
    handles, labels = axes[2].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(args.orders) + 1, fontsize=8)
    figure.suptitle("Dashed: theoretical op-count speed-up. Solid: measured on x86 "
                    "(LCE portable kernels, not ARM).", fontsize=9)
    figure.tight_layout(rect=(0, 0.1, 1, 1))
    return figure


def main(argv=None):
    args = parse_args(argv)
    command = command_line("horq_speedup.py", argv)
    start = time.perf_counter()
    configs = sorted({(args.channels_fixed, k) for k in args.filter_sizes}
                     | {(c, args.filter_fixed) for c in args.channels}
                     | {(args.channels_fixed, args.filter_fixed)})
    kinds = ["float", "bconv"] + [f"horq{order}" for order in args.orders]
    with load_average() as load:
        latency = measure(configs, kinds, args.size, args.repeats)
    rows = sweep_rows(args, latency, configs)
    wall = time.perf_counter() - start
    markdown = render_markdown(args, rows, wall, load_note(load))
    print(markdown)
    write_results(
        args.output_dir, NAME, command=command, markdown=markdown,
        data={"settings": {key: value for key, value in vars(args).items()
                           if key not in ("output_dir",)},
              "interpreter": {"num_threads": 1, "use_indirect_bgemm": True,
                              "use_xnnpack": True},
              "rows": rows, "load_average": load, "wall_s": wall},
        figure=plot(args, rows),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
