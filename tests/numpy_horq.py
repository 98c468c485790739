"""Plain NumPy reference of HORQ (Li et al., ICCV 2017, Algorithm 2) for the tests.

No TensorFlow here: every formula is written from the paper so the Keras layers can be
checked against an independent implementation. Arrays are NHWC; kernels are
``(k_h, k_w, c_in, c_out)`` as in Keras. Computations run in float64.
"""

import numpy as np


def sign(x):
    """Binary sign with ``sign(0) = +1`` (larq's convention)."""
    return np.where(np.asarray(x) >= 0, 1.0, -1.0)


def residual_bases(x, order, axis=-1):
    """Order-K residual binarization (eq. 16–17) over ``axis`` (int or tuple).

    Returns K pairs ``(beta_i, H_i)`` with ``beta_i = mean|R_{i-1}|`` (reduced axes
    kept with size 1), ``H_i = sign(R_{i-1})`` and ``R_i = R_{i-1} - beta_i H_i``.
    """
    residual = np.asarray(x, dtype=np.float64)
    bases = []
    for _ in range(order):
        beta = np.mean(np.abs(residual), axis=axis, keepdims=True)
        h = sign(residual)
        bases.append((beta, h))
        residual = residual - beta * h
    return bases


def residual_binarize(x, order, axis=-1):
    """``sum_i beta_i H_i``, the order-K approximation of ``x``."""
    return sum(beta * h for beta, h in residual_bases(x, order, axis))


def binary_kernel(kernel):
    """``(alpha, B)`` with ``W ≈ alpha B``, ``B = sign(W)``, ``alpha = mean|W|`` (eq. 18–19).

    ``alpha`` is per output channel, the last axis (conv ``(k_h, k_w, c_in, c_out)``
    or dense ``(c_in, units)``). Binary products are computed as ``(x · B) * alpha``
    so that a product of ±1 tensors is an exact integer (a zero stays exactly zero,
    as in LCE's popcount arithmetic).
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    alpha = np.mean(np.abs(kernel), axis=tuple(range(kernel.ndim - 1)))
    return alpha, sign(kernel)


def same_padding(size, kernel_size, stride, dilation):
    """TensorFlow's (before, after) split of ``padding="same"`` along one axis."""
    effective = (kernel_size - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def pad(x, kernel_size, strides, dilation, padding, value):
    """Pad NHWC ``x`` for ``padding`` ("valid": nothing) with the constant ``value``."""
    if padding == "valid":
        return np.asarray(x, dtype=np.float64)
    spatial = [
        same_padding(x.shape[axis + 1], kernel_size[axis], strides[axis], dilation[axis])
        for axis in range(2)
    ]
    return np.pad(
        np.asarray(x, dtype=np.float64),
        [(0, 0), *spatial, (0, 0)],
        mode="constant",
        constant_values=value,
    )


def im2col(x, kernel_size, strides, dilation):
    """Unfold already padded NHWC ``x`` into ``(N, OH, OW, k_h * k_w * C)`` columns.

    The column is ordered ``(k_h, k_w, C)``, matching ``kernel.reshape(-1, c_out)``.
    """
    n, h, w, c = x.shape
    (k_h, k_w), (s_h, s_w), (d_h, d_w) = kernel_size, strides, dilation
    out_h = (h - (k_h - 1) * d_h - 1) // s_h + 1
    out_w = (w - (k_w - 1) * d_w - 1) // s_w + 1
    columns = np.empty((n, out_h, out_w, k_h, k_w, c), dtype=x.dtype)
    for i in range(k_h):
        for j in range(k_w):
            rows = slice(i * d_h, i * d_h + (out_h - 1) * s_h + 1, s_h)
            cols = slice(j * d_w, j * d_w + (out_w - 1) * s_w + 1, s_w)
            columns[:, :, :, i, j, :] = x[:, rows, cols, :]
    return columns.reshape(n, out_h, out_w, k_h * k_w * c)


def conv2d_valid(x, kernel, strides, dilation):
    """Plain "valid" convolution (cross-correlation) of padded ``x`` by im2col."""
    kernel = np.asarray(kernel, dtype=np.float64)
    columns = im2col(x, kernel.shape[:2], strides, dilation)
    return columns @ kernel.reshape(-1, kernel.shape[-1])


def _pair(value):
    return (value, value) if np.isscalar(value) else tuple(value)


class ConvSpec:
    """Geometry of a convolution: kernel size, strides, dilation, padding, pad value."""

    def __init__(self, kernel_size, strides=1, dilation=1, padding="valid", pad_values=1.0):
        self.kernel_size = _pair(kernel_size)
        self.strides = _pair(strides)
        self.dilation = _pair(dilation)
        self.padding = padding
        self.pad_values = pad_values

    def pad(self, x, value):
        return pad(x, self.kernel_size, self.strides, self.dilation, self.padding, value)

    def conv(self, x, kernel, value):
        """Pad ``x`` with ``value``, then convolve it with ``kernel``."""
        return conv2d_valid(self.pad(x, value), kernel, self.strides, self.dilation)

    def receptive_field_mean(self, beta_map):
        """XNOR-Net's ``K = A ⊛ k``: box filter ``1/(k_h k_w)``, zero padding."""
        k_h, k_w = self.kernel_size
        box = np.full((k_h, k_w, 1, 1), 1.0 / (k_h * k_w))
        return self.conv(beta_map, box, 0.0)


def horq_conv_column(x, kernel, order, spec):
    """Exact HORQ conv (eq. 20–21): residual-binarize each im2col column, then multiply."""
    columns = im2col(spec.pad(x, spec.pad_values), spec.kernel_size, spec.strides, spec.dilation)
    quantized = residual_binarize(columns, order, axis=-1)
    alpha, binary = binary_kernel(kernel)
    return (quantized @ binary.reshape(-1, binary.shape[-1])) * alpha


def horq_conv_pixel(x, kernel, order, spec):
    """Pixel form: ``y = sum_i (H_i ⊛ alpha B) ⊙ (beta_i ⊛ k)``, beta_i over channels."""
    alpha, binary = binary_kernel(kernel)
    return sum(
        spec.conv(h, binary, spec.pad_values) * alpha * spec.receptive_field_mean(beta)
        for beta, h in residual_bases(x, order, axis=-1)
    )


def horq_conv_sample(x, kernel, order, spec):
    """Sample form: ``y = sum_i beta_i (H_i ⊛ alpha B)``, beta_i over (H, W, C)."""
    alpha, binary = binary_kernel(kernel)
    return sum(
        beta * spec.conv(h, binary, spec.pad_values) * alpha
        for beta, h in residual_bases(x, order, axis=(1, 2, 3))
    )


HORQ_CONV = {"column": horq_conv_column, "pixel": horq_conv_pixel, "sample": horq_conv_sample}


def horq_dense(x, kernel, order):
    """HORQ dense: residual-binarize each feature vector, multiply by ``alpha sign(W)``."""
    alpha, binary = binary_kernel(kernel)
    return (residual_binarize(x, order, axis=-1) @ binary) * alpha


def xnor_net_conv(x, kernel, spec):
    """XNOR-Net (Rastegari et al., 2016, §3.2): ``(sign(X) ⊛ alpha sign(W)) ⊙ K``.

    ``A = mean_c |X|`` and ``K = A ⊛ k`` with ``k`` the ``1/(k_h k_w)`` box filter.
    """
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    alpha = np.abs(kernel).mean(axis=(0, 1, 2))
    binary = spec.conv(sign(x), sign(kernel), spec.pad_values) * alpha
    activation_scale = np.abs(x).mean(axis=-1, keepdims=True)
    return binary * spec.receptive_field_mean(activation_scale)


def xnor_net_column_conv(x, kernel, spec):
    """XNOR per im2col column: ``y = mean|x_col| * (sign(x_col) · alpha sign(W))``."""
    columns = im2col(spec.pad(x, spec.pad_values), spec.kernel_size, spec.strides, spec.dilation)
    kernel = np.asarray(kernel, dtype=np.float64)
    alpha = np.abs(kernel).mean(axis=(0, 1, 2))
    products = sign(columns) @ sign(kernel).reshape(-1, kernel.shape[-1])
    return np.abs(columns).mean(axis=-1, keepdims=True) * products * alpha
