"""NumPy float32 versions of the layers' pieces, for the cached samplers.

Each follows the Theano layer's order of operations (cross-correlation, bias,
then the activation), so that the cached logits agree with the network's to
float32 rounding. One row of a map is ``(batch, width, channels)``.
"""
import numpy

F32 = numpy.float32


def leaky_relu(x):
    """The original's ReLU: x where x > 0, else 1e-5 * x (float32)."""
    return numpy.maximum(x, F32(1e-5) * x)  # = x for x > 0, else 1e-5 * x


def row_conv(rows, weight, bias, pad):
    """One output row of a cross-correlation.

    rows: (batch, kh, width, in) input rows under the filter (zeros above the image);
    weight: (out, in, kh, kw); pad: zero columns each side.
    Returns (batch, width + 2 * pad - kw + 1, out).
    """
    batch, kh, width, channels = rows.shape
    out_ch, _, _, kw = weight.shape
    padded = numpy.zeros((batch, kh, width + 2 * pad, channels), dtype=F32)
    padded[:, :, pad:pad + width] = rows
    out_w = width + 2 * pad - kw + 1
    # patches (batch, out_w, kh, kw, in) . weight (kh, kw, in, out)
    cols = numpy.stack([padded[:, :, c:c + out_w] for c in range(kw)], axis=2)
    patches = cols.transpose(0, 3, 1, 2, 4).reshape(batch * out_w, kh * kw * channels)
    w = weight.transpose(2, 3, 1, 0).reshape(kh * kw * channels, out_ch)
    return (patches.dot(w) + bias).reshape(batch, out_w, out_ch).astype(F32)


def sigmoid(x):
    """Logistic function in float32, written with tanh so that it never overflows."""
    return (F32(0.5) * (F32(1.0) + numpy.tanh(F32(0.5) * x))).astype(F32)


def gate(pre):
    """(..., 2p) pre-activations -> (..., p): tanh(first half) * sigmoid(second half)."""
    dim = pre.shape[-1] // 2
    return (numpy.tanh(pre[..., :dim]) * sigmoid(pre[..., dim:])).astype(F32)


def pointwise(x, layer):
    """A 1x1 convolution on channels-last x (..., in) with (weight (out, in, 1, 1), bias)."""
    weight, bias = layer
    return (x.dot(weight[:, :, 0, 0].T) + bias).astype(F32)


def tap_matrix(weight, columns):
    """One-row filter ``(out, in, 1, cols)`` restricted to ``columns`` -> ``(len(columns)
    * in, out)``, rows in (column, channel) order: the matrix that multiplies the
    columns' maps ``(batch, len(columns), in)`` reshaped to ``(batch, len(columns) * in)``."""
    taps = weight[:, :, 0, list(columns)]                      # (out, in, k)
    return numpy.ascontiguousarray(taps.transpose(2, 1, 0).reshape(-1, weight.shape[0]))


def pointwise_matrix(layer):
    """(1x1 filter ``(out, in, 1, 1)``, bias) -> (contiguous ``(in, out)`` matrix, bias)."""
    weight, bias = layer
    return numpy.ascontiguousarray(weight[:, :, 0, 0].T), bias
