"""Cached sampling for pixelConv: the same draws as the naive sampler, far less work.

The naive sampler reruns the whole network on the whole image for each of the
height x width pixels. But when pixel (i, j) is drawn, almost all of that work
is already done or not needed (Ramachandran et al. 2017, "Fast Generation for
Convolutional Autoregressive Models", describe the general idea):

* Vertical stack: row i of every vertical map depends only on image rows < i
  (the "above" maps) or <= i (the maps passed down the stack). So once image
  row i is complete, each vertical layer computes just one new row from the
  last two rows of the layer below (the first layer from the last four image
  rows). Those rows are kept in small per-layer buffers: one row of work per
  layer per image row, instead of the whole image per pixel.

* Horizontal stack: within row i, the horizontal stack at column j depends on
  the vertical maps of row i (fixed for the row), on image pixels (i, j-3..j-1)
  and, in later layers, on columns j-1 and j of the layer below. The vertical
  part of each horizontal convolution is therefore computed once per row for
  all columns, and for each pixel only column j of every horizontal layer and
  of the two 1x1 output layers is evaluated: a few (batch, DIM) x (DIM, DIM)
  products per layer.

Everything runs in NumPy float32 on the weights of a checkpoint, in the same
order of operations as the layers (cross-correlation, bias, then the
original's leaky ReLU), so the logits agree with Theano's to float32 rounding
and the inverse-CDF draws (``sampling.draws``, in the loop of
``sampling.cached``) give the naive sampler's images for the same seed.

Map layouts are channels-last: ``(batch, width, channels)`` for one row.
"""
import numpy

from lib.layers import make_mask
from models.pixel_conv import FILTER_SIZE, FIRST_FILTER_SIZE
from sampling.cached import CachedEvaluator
from sampling.numpy_layers import F32, leaky_relu, pointwise_matrix, row_conv, tap_matrix

class CachedPixelConv(CachedEvaluator):
    """pixelConv evaluated row by row and pixel by pixel from its weights.

    weights: ``{name: ndarray}`` with pixelConv's names under ``prefix``.
    """

    pixel_states_carry_over = False   # later rows read only the vertical stack's rows

    def __init__(self, weights, prefix, num_layers, input_dim, q_levels):
        self.num_layers, self.input_dim, self.q_levels = num_layers, input_dim, q_levels
        # pixelConv's colours of one pixel are predicted independently (the original's
        # masks have no colour groups): no logit reads the pixel being drawn.
        self.sees_current_pixel = False
        self.pixel_offset = FIRST_FILTER_SIZE // 2

        def get(layer):
            w = numpy.asarray(weights[prefix + "." + layer + ".filter"], dtype=F32)
            return w, numpy.asarray(weights[prefix + "." + layer + ".b"], dtype=F32)

        self.v1 = get("vstack1")
        hw, hb = get("hstack1")
        hw = hw * make_mask(hw.shape, "a")
        dim = self.v1[0].shape[0]
        self.dim = dim
        k = FIRST_FILTER_SIZE // 2
        self.h1_above, self.h1_b = hw[:, :dim], hb
        self.h1_pixels = tap_matrix(hw[:, dim:], range(k))     # (k * input_dim, DIM)
        self.blocks = []
        for i in range(2, num_layers):
            hw, hb = get("hstack%d" % i)
            self.blocks.append({"v": get("vstack%d" % i), "v2h": get("v2h%d" % i),
                                "h_above": hw[:, :dim], "h_b": hb,
                                "h_prev": tap_matrix(hw[:, dim:], (0, 1)),   # (2 DIM, DIM)
                                "h2h": pointwise_matrix(get("h2hstack%d" % i))})
        self.c1 = pointwise_matrix(get("combined_stack1"))
        self.c2 = pointwise_matrix(get("combined_stack2"))

    # ----- vertical stack: one row per layer per image row ---------------------------
    def start(self, batch, width, condition=None):
        """Reset the caches for a new batch of images of the given width
        (``condition`` is for conditional models; pixelConv takes none)."""
        if condition is not None:
            raise ValueError("pixelConv is unconditional; pass condition=None")
        k = FIRST_FILTER_SIZE // 2
        # image rows i-3..i and, per layer, vertical-map rows i-1..i; all zero
        # (the convolutions' padding) before the first row.
        self.image_rows = numpy.zeros((batch, k + 1, width, self.input_dim), dtype=F32)
        self.v_rows = [numpy.zeros((batch, 2, width, self.dim), dtype=F32)
                       for _ in range(self.num_layers - 1)]
        self.above = self._vertical()

    def finish_row(self, image_row):
        """image_row (batch, width, input_dim) float32 inputs -> caches for the next row."""
        self.above = self._vertical(image_row)

    def _vertical(self, image_row=None):
        """'Above' maps for the next row, one (batch, width, DIM) array per layer.

        With ``image_row``, first push that finished row into the buffers: then
        each layer's new vertical row is computed once and serves both as the
        next row's 'above' map (via v2h) and as input to the layer above.
        """
        def push(rows, row):
            return numpy.concatenate([rows[:, 1:], row[:, None]], axis=1)

        if image_row is not None:
            self.image_rows = push(self.image_rows, image_row)
        out = row_conv(self.image_rows, self.v1[0], self.v1[1], FIRST_FILTER_SIZE // 2)
        above = [out]
        if image_row is not None:
            self.v_rows[0] = push(self.v_rows[0], out)  # layer 1 passes it on unactivated
        for n, block in enumerate(self.blocks):
            s = row_conv(self.v_rows[n], block["v"][0], block["v"][1], FILTER_SIZE // 2)
            above.append(row_conv(s[:, None], block["v2h"][0], block["v2h"][1], 0))
            if image_row is not None:
                self.v_rows[n + 1] = push(self.v_rows[n + 1], leaky_relu(s))
        return above

    # ----- horizontal stack: one column per layer per pixel ---------------------------
    def start_row(self):
        """Precompute the vertical stack's share of every horizontal layer for this row."""
        k = FIRST_FILTER_SIZE // 2
        batch, width = self.above[0].shape[:2]
        self.h1_from_above = row_conv(self.above[0][:, None], self.h1_above, self.h1_b, k)
        self.from_above = [row_conv(a[:, None], b["h_above"], b["h_b"], 1)[:, :width]
                           for a, b in zip(self.above[1:], self.blocks)]
        self.row_inputs = numpy.zeros((batch, width + k, self.input_dim), dtype=F32)
        self.h = [numpy.zeros((batch, width + 1, self.dim), dtype=F32)
                  for _ in range(self.num_layers - 1)]  # column c stored at c + 1

    def pixel_logits(self, j):
        """Logits (batch, input_dim, q_levels) of pixel j of the current row."""
        k = FIRST_FILTER_SIZE // 2
        batch = len(self.row_inputs)
        taps = self.row_inputs[:, j:j + k].reshape(batch, -1)  # input columns j-3 .. j-1
        h = self.h1_from_above[:, j] + taps.dot(self.h1_pixels)
        self.h[0][:, j + 1] = h
        for n, block in enumerate(self.blocks):
            prev = self.h[n][:, j:j + 2].reshape(batch, -1)    # columns j-1 and j
            act = leaky_relu(self.from_above[n][:, j] + prev.dot(block["h_prev"]))
            w, b = block["h2h"]
            h = leaky_relu(act.dot(w) + b) + h
            self.h[n + 1][:, j + 1] = h
        w1, b1 = self.c1
        w2, b2 = self.c2
        logits = leaky_relu(h.dot(w1) + b1).dot(w2) + b2
        return logits.reshape(batch, self.input_dim, self.q_levels)
