"""Deterministic aarch64 instruction counts under qemu-user (set up by
``scripts/setup_arm_emulation.sh``), for ``benchmarks/arm_emulated.py``.

Two kinds of programs run on the emulated Cortex-A72 (``qemu-aarch64 -cpu cortex-a72``):

- Debian's arm64 Python 3.11 with the aarch64 ``ai-edge-litert`` wheel: one guest process
  invokes a list of one-operator TFLite models (``arm/guest_count.py``) with TFLite's own
  aarch64 kernels (XNNPACK where TFLite delegates to it);
- ``arm/neon_bgemm.c``: this project's NEON bitpacking and binary GEMM, the stand-in for
  LCE's ``LceQuantize``/``LceDequantize``/``LceBconv2d`` (no aarch64 LCE runtime exists
  here). Every run's output is checked against the NumPy references below.

Counts come from ``arm/marker_plugin.c``, a TCG plugin that writes the guest's executed
instruction count each time the guest makes a marker system call: the difference between
two markers is the work between them, the same on every run (TCG has no timing model:
no pipeline, cache or memory stalls; threads are not used).
"""

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import tempfile

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
ARM_ROOT = pathlib.Path(os.environ.get("ARM_ROOT", REPO / ".arm"))
RUN_GUEST = HERE / "arm" / "run_guest.sh"
GUEST_SCRIPT = HERE / "arm" / "guest_count.py"
MARKER_PLUGIN = ARM_ROOT / "plugins" / "libmarker.so"
NEON_SOURCE = HERE / "arm" / "neon_bgemm.c"
#: The cross-compiled NEON kernel, built on first use into the checkout (not into the
#: shared ``ARM_ROOT``) under a name that carries its source's hash, so a changed kernel
#: never runs as, or overwrites, another one; ``ARM_NEON_BINARY`` names another path.
NEON_BINARY = pathlib.Path(os.environ.get("ARM_NEON_BINARY", REPO / ".arm-kernel" / (
    "neon_bgemm-" + hashlib.sha1(NEON_SOURCE.read_bytes()).hexdigest()[:12])))
SETUP_COMMAND = "scripts/setup_arm_emulation.sh (as root; `make arm-setup`)"
CPU = os.environ.get("ARM_CPU", "cortex-a72")
CROSS_COMPILER = "aarch64-linux-gnu-gcc"


def missing():
    """Why the emulator cannot run here (a sentence naming the set-up command), or None."""
    if shutil.which(CROSS_COMPILER) is None:
        return f"aarch64 emulation not set up ({CROSS_COMPILER} missing): run {SETUP_COMMAND}"
    needed = [MARKER_PLUGIN, ARM_ROOT / "guest" / "usr" / "bin" / "python3.11",
              ARM_ROOT / "site" / "ai_edge_litert", ARM_ROOT / "cpuinfo"]
    absent = [str(p) for p in needed if not p.exists()]
    if absent:
        return f"aarch64 emulation not set up ({absent[0]} missing): run {SETUP_COMMAND}"
    if os.geteuid() != 0:
        return "aarch64 emulation needs root (a private mount namespace for /proc/cpuinfo)"
    return None


def _run(program, args, counts_path, timeout):
    """Run ``program`` under the emulator with the marker plugin; return (rc, stdout, stderr)."""
    command = [str(RUN_GUEST), "-plugin", f"{MARKER_PLUGIN},out={counts_path}", str(program),
               *map(str, args)]
    env = {**os.environ, "ARM_ROOT": str(ARM_ROOT), "ARM_CPU": CPU}
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    return result.returncode, result.stdout, result.stderr


def read_markers(path):
    """``{tag: instruction count}`` from the marker plugin's file (``exit`` at the end)."""
    markers = {}
    for line in pathlib.Path(path).read_text().splitlines():
        tag, count = line.split()
        markers[tag if tag == "exit" else int(tag)] = int(count)
    return markers


def tflite_counts(models, *, repeats, workdir, timeout=3600, progress=print):
    """Instructions of one invocation of each TFLite model (list of bytes) on the guest.

    One guest process runs them all; if it crashes, the model it was running is recorded
    as failed (``None``) and a new process continues with the next one.

    Returns a list of ``int`` or ``None``: ``((N invocations) - (0 invocations)) / N``
    between markers, which includes the Python loop around ``invoke()`` (a few hundred
    instructions; CPython 3.11 specializes that loop after the first models, so an
    operator's count can move by ~500 with its position in the list; the same list gives
    the same counts).
    """
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, model in enumerate(models):
        path = workdir / f"op{index}.tflite"
        path.write_bytes(model)
        paths.append(str(path))
    manifest = workdir / "manifest.json"
    manifest.write_text(json.dumps({"repeats": repeats, "models": paths}))
    counts, start = [None] * len(models), 0
    while start < len(models):
        counts_path = workdir / f"markers{start}.txt"
        rc, stdout, stderr = _run("python3.11", [GUEST_SCRIPT, manifest, start], counts_path,
                                  timeout)
        markers = read_markers(counts_path) if counts_path.exists() else {}
        for index in range(start, len(models)):
            tags = [4 * index + k for k in range(4)]
            if all(tag in markers for tag in tags):
                c = [markers[tag] for tag in tags]
                counts[index] = ((c[3] - c[2]) - (c[1] - c[0])) // repeats
        begun = [int(line.split()[1]) for line in stdout.splitlines() if line.startswith("BEGIN")]
        if rc == 0 and "DONE" in stdout:
            break
        failed = begun[-1] if begun else start
        progress(f"  guest process failed on model {failed} (rc {rc}): {stderr.strip()[-400:]}")
        start = failed + 1
    return counts


def pack_bits(x):
    """NumPy reference of the kernel's bitpacking: bit i of 64-bit word w is x[64w+i] < 0."""
    x = np.asarray(x, np.float32)
    channels = x.shape[-1]
    words = -(-channels // 64)
    bits = np.zeros(x.shape[:-1] + (64 * words,), np.uint8)
    bits[..., :channels] = x < 0
    packed = np.packbits(bits.reshape(x.shape[:-1] + (words, 64)), axis=-1, bitorder="little")
    return packed.view("<u8").reshape(x.shape[:-1] + (words,))


def unpack_bits(words, channels):
    """NumPy reference of the kernel's unpacking: +1 where the bit is 0, -1 where it is 1."""
    words = np.asarray(words, "<u8")
    bits = np.unpackbits(words[..., None].view(np.uint8), axis=-1, bitorder="little")
    bits = bits.reshape(words.shape[:-1] + (64 * words.shape[-1],))[..., :channels]
    return np.where(bits == 1, -1.0, 1.0).astype(np.float32)


def conv_output_size(size, kernel, stride, same):
    return -(-size // stride) if same else (size - kernel) // stride + 1


def binary_conv_reference(x_signs, w_signs, multiplier, bias, strides, same):
    """Float reference of LceBconv2d: ``multiplier * conv(x, w) + bias`` with +1 padding.

    ``x_signs`` [H, W, C] and ``w_signs`` [O, KH, KW, C] hold +-1.
    """
    (h, w, c), (o, kh, kw, _) = x_signs.shape, w_signs.shape
    ho, wo = (conv_output_size(n, k, s, same) for n, k, s in ((h, kh, strides[0]),
                                                                (w, kw, strides[1])))
    pad_h, pad_w = ((kh - 1) // 2, (kw - 1) // 2) if same else (0, 0)
    padded = np.ones((h + kh + strides[0] * ho, w + kw + strides[1] * wo, c), np.float32)
    padded[pad_h:pad_h + h, pad_w:pad_w + w] = x_signs
    columns = np.stack([padded[ky:ky + strides[0] * ho:strides[0],
                               kx:kx + strides[1] * wo:strides[1]]
                        for ky in range(kh) for kx in range(kw)], axis=2)  # [ho, wo, kh*kw, c]
    dot = columns.reshape(ho * wo, -1) @ w_signs.reshape(o, -1).T.astype(np.float32)
    return (dot * multiplier + bias).reshape(ho, wo, o).astype(np.float32)


def ideal_binary_instructions(macs):
    """Instructions of an ideal binary kernel: per 128 binary multiply-adds one EOR, one CNT
    and one accumulate (a 128-bit lane each), loads, reductions and stores amortised away."""
    return 3 * macs / 128


def ideal_float_instructions(macs):
    """Instructions of an ideal float32 NEON kernel: one FMLA per 4 multiply-adds."""
    return macs / 4


def build_neon_binary():
    """Cross-compile ``NEON_SOURCE`` into ``NEON_BINARY`` unless it is there."""
    if NEON_BINARY.exists():
        return
    NEON_BINARY.parent.mkdir(parents=True, exist_ok=True)
    partial = NEON_BINARY.with_name(f"{NEON_BINARY.name}.{os.getpid()}.tmp")
    subprocess.run([CROSS_COMPILER, "-O2", "-static", "-march=armv8-a", "-o", str(partial),
                    str(NEON_SOURCE)], check=True)
    partial.replace(NEON_BINARY)


def _neon(op, inputs, dims, repeats, workdir, timeout):
    build_neon_binary()
    workdir = pathlib.Path(tempfile.mkdtemp(dir=workdir))
    in_path, out_path, counts_path = workdir / "in.bin", workdir / "out.bin", workdir / "m.txt"
    in_path.write_bytes(b"".join(np.ascontiguousarray(a).tobytes() for a in inputs))
    rc, _, stderr = _run(NEON_BINARY, [op, in_path, out_path, repeats, *dims], counts_path,
                         timeout)
    if rc != 0:
        raise RuntimeError(f"neon_bgemm {op} {dims} failed (rc {rc}): {stderr.strip()}")
    markers = read_markers(counts_path)
    return (markers[2] - markers[1]) // repeats, out_path.read_bytes()


def neon_quantize(height, width, channels, *, repeats, workdir, rng, timeout=600):
    """Instructions of bitpacking a float [H, W, C] map; output checked against NumPy."""
    x = rng.standard_normal((height, width, channels)).astype(np.float32)
    count, out = _neon("quantize", [x], [height, width, channels], repeats, workdir, timeout)
    expected = pack_bits(x)
    if not np.array_equal(np.frombuffer(out, "<u8").reshape(expected.shape), expected):
        raise AssertionError(f"NEON quantize {x.shape} differs from the NumPy reference")
    return count


def neon_dequantize(height, width, channels, *, repeats, workdir, rng, timeout=600):
    """Instructions of unpacking [H, W, C] signs to +-1 floats; checked against NumPy."""
    words = pack_bits(rng.standard_normal((height, width, channels)).astype(np.float32))
    count, out = _neon("dequantize", [words], [height, width, channels], repeats, workdir,
                       timeout)
    expected = unpack_bits(words, channels)
    if not np.array_equal(np.frombuffer(out, np.float32).reshape(expected.shape), expected):
        raise AssertionError(f"NEON dequantize {expected.shape} differs from the NumPy reference")
    return count


def neon_bconv(height, width, channels, filters, kernel, strides, same, packed_output, *,
               repeats, workdir, rng, timeout=1800):
    """Instructions of one binary convolution (indirect NEON BGEMM); checked against NumPy.

    ``kernel`` and ``strides`` are (height, width) pairs; ``same`` pads with +1.
    """
    x = np.where(rng.random((height, width, channels)) < 0.5, -1.0, 1.0).astype(np.float32)
    w = np.where(rng.random((filters, *kernel, channels)) < 0.5, -1.0, 1.0).astype(np.float32)
    # Multipliers of both signs and a zero one (a folded batch norm's scale may be either):
    # each takes its own branch of the bitpacked output's thresholds.
    signs = rng.choice([-1.0, 1.0], filters)
    multiplier = (rng.uniform(0.5, 1.5, filters) * signs).astype(np.float32)
    multiplier[0] = 0.0
    bias = rng.normal(0.0, 1.0, filters).astype(np.float32)
    dims = [height, width, channels, filters, *kernel, *strides, int(same), int(packed_output)]
    count, out = _neon("bconv", [pack_bits(x), pack_bits(w), multiplier, bias], dims, repeats,
                       workdir, timeout)
    expected = binary_conv_reference(x, w, multiplier, bias, strides, same)
    if packed_output:
        got = unpack_bits(np.frombuffer(out, "<u8").reshape(expected.shape[:2] + (-1,)), filters)
        ok = np.all((got == np.where(expected < 0, -1.0, 1.0)) | (np.abs(expected) < 1e-3))
    else:
        ok = np.allclose(np.frombuffer(out, np.float32).reshape(expected.shape), expected,
                         rtol=1e-5, atol=1e-3)
    if not ok:
        raise AssertionError(f"NEON bconv {dims} differs from the NumPy reference")
    return count
