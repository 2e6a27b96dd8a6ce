"""Cached sampling for the masked PixelCNN and the PixelRNNs: every layer once per pixel.

In these models every map at position (i, j), in every layer, depends only on
the pixels before (i, j) in raster order (and, with colour, on the colours of
(i, j) before its own group): masks A and B, the Row LSTM's row above and the
Diagonal BiLSTM's left-to-right pass all look back. So when pixel (i, j) is
about to be drawn, each layer's maps at (i, j) can be computed, and they never
change again. The naive sampler recomputes the whole image per pixel; here
each position of each layer is computed once, from the cached positions it
reads:

* 7x7 mask-'a' first layer at (i, j): image rows i-3 .. i, columns j-3 .. j+3
  (the masked taps are zero);
* masked PixelCNN block: the 1x1s at (i, j); the 3x3 mask 'b' reads the
  block's reduced maps at (i-1, j-1 .. j+1), (i, j-1) and (i, j);
* Row LSTM: the 1x3 mask-'b' input-to-state reads the layer input at
  (i, j-1), (i, j); the state-to-state reads the hidden states of row i-1 at
  columns j-1 .. j+1, and the cell carries c from (i-1, j);
* Diagonal BiLSTM, left to right: input at (i, j), hidden states (i-1, j) and
  (i, j-1), cell (i, j-1). Right to left: its states at (i, j) read row i from
  the right, so a whole row of them is computed once row i is complete; pixel
  (i + 1, j) reads them shifted down a row.

NumPy float32 from a checkpoint's weights, in the layers' order of
operations, so that the logits agree with Theano's to float32 rounding and
the draws (``sampling.cached``) give the naive sampler's images for a seed.
Maps are channels-last: ``(batch, rows, columns, channels)``, padded with
zeros where a filter reaches outside the image.
"""
import numpy

from lib.layers import make_mask
from models.masked_pixel_cnn import FILTER_SIZE, FIRST_FILTER_SIZE
from sampling.cached import CachedEvaluator
from sampling.numpy_layers import F32, leaky_relu, pointwise_matrix, sigmoid

K = FIRST_FILTER_SIZE // 2  # 3: the first layer's reach


def window_matrix(weight, rows):
    """Masked filter ``(out, in, kh, kw)`` -> ``(rows * kw * in, out)``: its first ``rows``
    rows (the rest are masked out), in (row, column, channel) order."""
    taps = weight[:, :, :rows]                                   # (out, in, rows, kw)
    return numpy.ascontiguousarray(taps.transpose(2, 3, 1, 0).reshape(-1, weight.shape[0]))


def lstm(gates, c_prev):
    """gates (batch, 4h) with channel 4k + g gate g of unit k (input, forget, output,
    candidate); c_prev (batch, h) -> (h, c), both (batch, h)."""
    g = gates.reshape(len(gates), -1, 4)
    c = sigmoid(g[:, :, 1]) * c_prev + sigmoid(g[:, :, 0]) * numpy.tanh(g[:, :, 3])
    return (sigmoid(g[:, :, 2]) * numpy.tanh(c)).astype(F32), c.astype(F32)


class CachedMaskedStack(CachedEvaluator):
    """What the three share: the masked first layer over a zero-padded image buffer,
    the residual stream of every layer and the relu/1x1 output head.

    weights: ``{name: ndarray}`` under ``prefix`` (models.masked_pixel_cnn,
    models.pixel_rnn); ``num_layers`` blocks.
    """

    def __init__(self, weights, prefix, num_layers, input_dim, q_levels):
        self.prefix, self.weights = prefix, weights
        self.num_layers, self.input_dim, self.q_levels = num_layers, input_dim, q_levels
        self.sees_current_pixel = input_dim > 1   # colour masks read the pixel's colours
        self.pixel_offset = K
        first, self.first_b = self.masked("first", "a")
        self.dim = first.shape[0]
        self.first = window_matrix(first, K + 1)                 # rows i-3 .. i
        self.out1 = pointwise_matrix(self.masked("output1", "b"))
        self.out2 = pointwise_matrix(self.masked("output2", "b"))

    def masked(self, layer, masktype):
        """(filter times its colour mask, bias) of ``<prefix>.<layer>``."""
        w = numpy.asarray(self.weights[self.prefix + "." + layer + ".filter"], dtype=F32)
        b = numpy.asarray(self.weights[self.prefix + "." + layer + ".b"], dtype=F32)
        return w * make_mask(w.shape, masktype, self.input_dim), b

    def start(self, batch, width, condition=None):
        if condition is not None:
            raise ValueError("this model is unconditional; pass condition=None")
        self.batch, self.width, self.row = batch, width, -1
        # image rows grow as drawn: K zero rows above, K zero columns each side
        self.image = numpy.zeros((batch, K, width + 2 * K, self.input_dim), dtype=F32)
        self.start_layers(batch, width)

    def start_row(self):
        self.row += 1
        new = numpy.zeros((self.batch, 1) + self.image.shape[2:], dtype=F32)
        self.image = numpy.concatenate([self.image[:, -K:], new], axis=1)  # rows i-3 .. i
        self.row_inputs = self.image[:, K]                       # a view: pixels of row i
        # row i of every layer's residual stream, one zero column each side: (i, j) at j + 1
        self.stream = numpy.zeros((self.num_layers + 1, self.batch, self.width + 2, self.dim),
                                  dtype=F32)
        self.start_layers_row()

    def finish_row(self, image_row):
        self.finish_layers_row()

    def pixel_logits(self, j):
        """Logits (batch, input_dim, q_levels) of pixel j of the current row; computes
        (or, with colour, recomputes) every layer at (i, j)."""
        patch = self.image[:, :, j:j + 2 * K + 1].reshape(self.batch, -1)
        x = patch.dot(self.first) + self.first_b
        self.stream[0, :, j + 1] = x
        for n in range(1, self.num_layers + 1):
            x = x + self.block(n, j, x)
            self.stream[n, :, j + 1] = x
        w1, b1 = self.out1
        w2, b2 = self.out2
        logits = leaky_relu(leaky_relu(x).dot(w1) + b1).dot(w2) + b2
        return logits.reshape(self.batch, self.input_dim, self.q_levels)

    # the model's own layers
    def start_layers(self, batch, width):
        raise NotImplementedError

    def start_layers_row(self):
        pass

    def finish_layers_row(self):
        pass

    def block(self, n, j, x):
        """Residual block n at (i, j) of the current row: x (batch, 2h) is the block's
        input there; returns what the block adds (batch, 2h)."""
        raise NotImplementedError


class CachedMaskedPixelCNN(CachedMaskedStack):
    """models.masked_pixel_cnn.MaskedPixelCNN, position by position (module docstring)."""

    def __init__(self, weights, prefix, num_layers, input_dim, q_levels):
        CachedMaskedStack.__init__(self, weights, prefix, num_layers, input_dim, q_levels)
        self.blocks = []
        for n in range(1, num_layers + 1):
            conv, conv_b = self.masked("layer%d.conv" % n, "b")
            self.blocks.append({
                "reduce": pointwise_matrix(self.masked("layer%d.reduce" % n, "b")),
                "conv": (window_matrix(conv, FILTER_SIZE // 2 + 1), conv_b),   # rows i-1, i
                "expand": pointwise_matrix(self.masked("layer%d.expand" % n, "b"))})
        self.h = self.blocks[0]["conv"][1].shape[0] if self.blocks else 0

    def start_layers(self, batch, width):
        # per block, its reduced maps: rows i-1 and i, one zero column each side
        self.reduced = numpy.zeros((self.num_layers, batch, 2, width + 2, self.h), dtype=F32)

    def start_layers_row(self):
        self.reduced[:, :, 0] = self.reduced[:, :, 1]
        self.reduced[:, :, 1] = 0

    def block(self, n, j, x):
        b = self.blocks[n - 1]
        w, bias = b["reduce"]
        self.reduced[n - 1, :, 1, j + 1] = leaky_relu(leaky_relu(x).dot(w) + bias)
        w, bias = b["conv"]
        patch = self.reduced[n - 1, :, :, j:j + 3].reshape(self.batch, -1)
        w2, b2 = b["expand"]
        return leaky_relu(patch.dot(w) + bias).dot(w2) + b2


class CachedRowLSTM(CachedMaskedStack):
    """models.pixel_rnn.RowLSTMPixelRNN, position by position (module docstring)."""

    kind = "rowlstm"

    def __init__(self, weights, prefix, num_layers, input_dim, q_levels):
        CachedMaskedStack.__init__(self, weights, prefix, num_layers, input_dim, q_levels)
        self.layers = []
        for n in range(1, num_layers + 1):
            name = "%s%d" % (self.kind, n)
            w_in, b_in = self.masked(name + ".input_to_state", "b")
            w_state = numpy.asarray(weights[prefix + "." + name + ".state_to_state.filter"],
                                    dtype=F32)
            self.layers.append({"in": (window_matrix(w_in, 1), b_in),        # (i, j-1 .. j+1)
                                "state": window_matrix(w_state, 1),         # (i-1, j-1 .. j+1)
                                "expand": pointwise_matrix(self.masked(name + ".expand", "b"))})
        self.h = self.layers[0]["state"].shape[0] // 3

    def start_layers(self, batch, width):
        zeros = numpy.zeros((self.num_layers, batch, width + 2, self.h), dtype=F32)
        self.h_above, self.c_above = zeros, zeros[:, :, 1:-1].copy()  # row i-1
        self.h_row, self.c_row = zeros.copy(), self.c_above.copy()    # row i

    def start_layers_row(self):
        self.h_above, self.h_row = self.h_row, numpy.zeros_like(self.h_row)
        self.c_above, self.c_row = self.c_row, numpy.zeros_like(self.c_row)

    def block(self, n, j, x):
        layer = self.layers[n - 1]
        w_in, b_in = layer["in"]
        inputs = self.stream[n - 1, :, j:j + 3].reshape(self.batch, -1)
        gates = inputs.dot(w_in) + b_in
        gates = gates + self.h_above[n - 1, :, j:j + 3].reshape(self.batch, -1).dot(
            layer["state"])
        h, c = lstm(gates, self.c_above[n - 1, :, j])
        self.h_row[n - 1, :, j + 1], self.c_row[n - 1, :, j] = h, c
        w, b = layer["expand"]
        return h.dot(w) + b


class CachedDiagonalBiLSTM(CachedMaskedStack):
    """models.pixel_rnn.DiagonalBiLSTMPixelRNN, position by position; the
    right-to-left direction row by row (module docstring)."""

    kind = "diagbilstm"

    def __init__(self, weights, prefix, num_layers, input_dim, q_levels):
        CachedMaskedStack.__init__(self, weights, prefix, num_layers, input_dim, q_levels)
        self.layers = []
        for n in range(1, num_layers + 1):
            name = "%s%d" % (self.kind, n)
            layer = {"expand": pointwise_matrix(self.masked(name + ".expand", "b"))}
            for direction in ("l2r", "r2l"):
                w_in, b_in = self.masked(name + "." + direction + ".input_to_state", "b")
                w_state = numpy.asarray(weights["{}.{}.{}.state_to_state.filter".format(
                    prefix, name, direction)], dtype=F32)                # (4h, h, 2, 1)
                layer[direction] = (pointwise_matrix((w_in, b_in)),
                                    numpy.ascontiguousarray(w_state[:, :, 0, 0].T),  # above
                                    numpy.ascontiguousarray(w_state[:, :, 1, 0].T))  # before
            self.layers.append(layer)
        self.h = self.layers[0]["l2r"][1].shape[0]

    def start_layers(self, batch, width):
        zeros = numpy.zeros((self.num_layers, batch, width + 1, self.h), dtype=F32)
        # left to right: row i-1 and row i (column j at j + 1, column -1 zero);
        # right to left: row i-1 (what row i reads, shifted down) and its row i
        self.l2r_above, self.l2r_h, self.l2r_c = zeros, zeros.copy(), zeros.copy()
        self.r2l_above = zeros[:, :, :width].copy()

    def start_layers_row(self):
        self.l2r_above, self.l2r_h = self.l2r_h, numpy.zeros_like(self.l2r_h)
        self.l2r_c = numpy.zeros_like(self.l2r_c)

    def block(self, n, j, x):
        layer = self.layers[n - 1]
        (w_in, b_in), w_above, w_before = layer["l2r"]
        x_in = self.stream[n - 1, :, j + 1]
        gates = x_in.dot(w_in) + b_in + self.l2r_above[n - 1, :, j + 1].dot(w_above) \
            + self.l2r_h[n - 1, :, j].dot(w_before)
        h, c = lstm(gates, self.l2r_c[n - 1, :, j])
        self.l2r_h[n - 1, :, j + 1], self.l2r_c[n - 1, :, j + 1] = h, c
        w, b = layer["expand"]
        return (h + self.r2l_above[n - 1, :, j]).dot(w) + b

    def finish_layers_row(self):
        """The right-to-left states of the finished row i, layer by layer, from column
        W-1 down to 0; row i + 1 reads them."""
        for n, layer in enumerate(self.layers):
            (w_in, b_in), w_above, w_before = layer["r2l"]
            x = self.stream[n, :, 1:-1]                               # (batch, W, 2h)
            # one (batch * W, 2h) x (2h, 4h) product: numpy.dot of a 3-d array would
            # take a dot product per output value instead, 3x slower overall
            gates_in = (x.reshape(-1, x.shape[2]).dot(w_in) + b_in).reshape(
                self.batch, self.width, -1)                           # (batch, W, 4h)
            above = self.r2l_above[n]                                 # row i-1
            row = numpy.zeros_like(above)
            h = c = numpy.zeros((self.batch, self.h), dtype=F32)
            for j in range(self.width - 1, -1, -1):
                gates = gates_in[:, j] + above[:, j].dot(w_above) + h.dot(w_before)
                h, c = lstm(gates, c)
                row[:, j] = h
            self.r2l_above[n] = row
