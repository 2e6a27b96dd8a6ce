"""pixelConv again, channels-last and built from large matrix products.

The same model as ``models.pixel_conv.pixelConv``: the same parameters (names,
shapes, order and initial values for the same ``numpy.random`` seed), the same
outputs and gradients to float32 rounding. Only the layout differs:

* every activation is a matrix ``(batch * rows * width, DIM)``, so each 1x1
  convolution is one product with a ``(DIM, DIM)`` matrix;
* each 2x3 vertical, 1x2 horizontal and first-layer convolution is one
  product of a patch matrix (``kernels.patches``) with the flattened filter, the
  bias folded in as a column of ones. The patch matrix reads the zero padding,
  the row shift, the crops and the concatenation of the two stacks directly,
  so none of them is a separate copy; masked taps are left out;
* the 1x1 v2h layer, linear and read only by the horizontal convolution
  after it, is folded into that convolution's filter (``fold_1x1``): one
  product per block fewer, same outputs to float32 rounding.

The vertical stack is computed for ``height + 1`` output rows ``r' = 0 ..
height``, row ``r'`` seeing image rows ``< r'``. Its rows ``0 .. height-1``
are the map "rows above r" that feeds the horizontal stack (``origin 0``,
one trailing row), and its rows ``1 .. height`` are the map "rows up to r"
that feeds the next vertical layer (``origin 1``): the two crops of the
shift/crop trick (``models/pixel_conv.py``) as two views of one tensor.

Input ``(batch, height, width, input_dim)``; output logits ``(batch, height,
width, input_dim, Q_LEVELS)`` (or ``(..., input_dim)`` when Q_LEVELS is None).
"""
import theano.tensor as T

from kernels.channels_last import (activate, as_map, causal_conv, conv1x1, conv_sum, conv_weights,
                                   fold_1x1, to_map)
from lib.layers import Layer
from models.pixel_conv import check_arguments

FIRST_FILTER_SIZE = 7
FILTER_SIZE = 3


class FastPixelConv(Layer):
    """Channels-last pixelConv; constructor and parameters as ``pixelConv``'s."""

    def __init__(self, input_layer, input_dim, DIM, Q_LEVELS=None, num_layers=6,
                 activation="relu", name=""):
        Layer.__init__(self, name)
        check_arguments(num_layers, Q_LEVELS)
        act = lambda x: activate(x, activation)  # noqa: E731
        self.weights = {}  # suffix -> (parameter, filter as used, bias, kept taps)

        X = input_layer.output()                         # (batch, H, W, input_dim)
        batch, height, width = X.shape[0], X.shape[1], X.shape[2]
        pixels = as_map(X)
        ones = as_map(T.ones((batch, height, width, 1), dtype=X.dtype))  # see fold_1x1

        # Layer 1: 4x7 vertical conv over rows r-4 .. r-1; 1x7 mask-'a' horizontal.
        k = FIRST_FILTER_SIZE
        f, b, taps = self._weights("vstack1", (DIM, input_dim, k // 2 + 1, k))
        V = to_map(causal_conv([pixels], f, b, taps, (-(k // 2 + 1), -(k // 2)), extra_rows=1),
                   batch, height + 1, width)             # row r' sees rows < r'
        f, b, taps = self._weights("hstack1", (DIM, DIM + input_dim, 1, k), masktype="a")
        X_h = causal_conv([as_map(V, 0, 1), pixels], f, b, taps, (0, -(k // 2)))
        X_v = as_map(V, 1, 0)                            # row r sees rows <= r

        # Layers 2 .. num_layers-1.
        k = FILTER_SIZE
        for i in range(2, num_layers):
            f, b, taps = self._weights("vstack%d" % i, (DIM, DIM, k // 2 + 1, k))
            V = causal_conv([X_v], f, b, taps, (-(k // 2 + 1), -(k // 2)), extra_rows=1)
            f_v2h, b_v2h, _ = self._weights("v2h%d" % i, (DIM, DIM, 1, 1))
            f, b, taps = self._weights("hstack%d" % i, (DIM, 2 * DIM, 1, k // 2 + 1))
            rows_above = as_map(to_map(V, batch, height + 1, width), 0, 1)
            hidden = act(conv_sum(
                fold_1x1(rows_above, f_v2h, b_v2h, f[:, :DIM], taps, (0, -(k // 2)), ones)
                + [([as_map(to_map(X_h, batch, height, width))], f[:, DIM:], taps,
                    (0, -(k // 2)))], [b]))
            f, b, _ = self._weights("h2hstack%d" % i, (DIM, DIM, 1, 1))
            X_h = act(conv1x1(hidden, f, b)) + X_h       # residual
            X_v = as_map(to_map(act(V), batch, height + 1, width), 1, 0)

        out_dim = input_dim if Q_LEVELS is None else input_dim * Q_LEVELS
        f, b, _ = self._weights("combined_stack1", (DIM, DIM, 1, 1))
        hidden = act(conv1x1(X_h, f, b))
        f, b, _ = self._weights("combined_stack2", (out_dim, DIM, 1, 1))
        out = conv1x1(hidden, f, b)                      # (batch * H * W, out_dim)
        if Q_LEVELS is None:
            self.Y = out.reshape((batch, height, width, input_dim))
        else:
            self.Y = out.reshape((batch, height, width, input_dim, Q_LEVELS))
        self._order_params(num_layers)

    def _weights(self, suffix, shape, masktype=None):
        """Create ``<name>.<suffix>.filter`` and ``.b`` as ``Conv2D`` does (same
        initialiser, same draws); returns (filter as used, bias, kept taps)."""
        param, used, b, taps = conv_weights(self.name + "." + suffix, shape, masktype)
        self.weights[suffix] = (param, b)
        return used, b, taps

    def _order_params(self, num_layers):
        """Parameters in the original's order: per block vstack, hstack, v2h, h2hstack."""
        order = ["vstack1", "hstack1"]
        for i in range(2, num_layers):
            order += ["vstack%d" % i, "hstack%d" % i, "v2h%d" % i, "h2hstack%d" % i]
        order += ["combined_stack1", "combined_stack2"]
        self.params = [p for suffix in order for p in self.weights[suffix]]

    def output(self):
        return self.Y
