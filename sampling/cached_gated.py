"""Cached sampling for the GatedPixelCNN: the naive sampler's draws, far less work.

The same scheme as ``sampling.cached_pixel_conv`` (read its docstring), on
the gated block of ``models.gated_pixel_cnn``:

* Vertical stack, once per image row: after row i is drawn, layer 1 computes
  its new 2p pre-activation row from the last four image rows, later layers
  from the last two gated rows of the layer below. The pre-activation row is
  at once the next row's link (through the 1x1 ``v2h``) and, gated with the
  vertical condition bias, the new gated row passed up the stack.

* Horizontal stack, once per pixel: for pixel (i, j) every layer evaluates
  only column j from the link's column j, the pixels (i, j-3 .. j-1) (layer 1)
  or columns j-1, j of the layer below, and the horizontal condition bias.

The condition is fixed per image: its biases ``h . V`` (2p values per layer
and stack) are computed once in ``start``, and so is a condition map's S
(batch, map rows, width, K), whose bias ``S . M`` is taken for the current row
(vertical) or pixel (horizontal). NumPy float32 throughout, in the
layers' order of operations, so that the logits agree with Theano's to
float32 rounding and the inverse-CDF draws (``sampling.draws``, in the loop
of ``sampling.cached``) give the naive sampler's images for the same seed.

Map layouts are channels-last: one row of a map is ``(batch, width, channels)``.
"""
import numpy

from lib.layers import make_mask
from models.gated_pixel_cnn import FILTER_SIZE, FIRST_FILTER_SIZE, colour_mask
from sampling.cached import CachedEvaluator
from sampling.numpy_layers import F32, gate, leaky_relu, pointwise, row_conv, tap_matrix


class CachedGatedPixelCNN(CachedEvaluator):
    """GatedPixelCNN evaluated row by row and pixel by pixel from its weights.

    weights: ``{name: ndarray}`` with GatedPixelCNN's names under ``prefix``;
    the model is conditional when ``<prefix>.hcond1.W`` is among them.
    """

    pixel_states_carry_over = False   # later rows read only the vertical stack's rows

    def __init__(self, weights, prefix, num_layers, input_dim, q_levels):
        self.num_layers, self.input_dim, self.q_levels = num_layers, input_dim, q_levels
        self.dim = weights[prefix + ".vstack1.filter"].shape[0] // 2
        # With colour, hstack1's centre tap reads the drawn colours of the pixel itself.
        self.sees_current_pixel = input_dim > 1
        self.pixel_offset = FIRST_FILTER_SIZE // 2

        def get(layer, suffix=None):
            """(filter with the layer's mask, bias), or the array ``layer + suffix``."""
            key = prefix + "." + layer
            if suffix is not None:
                return numpy.asarray(weights[key + suffix], dtype=F32)
            w = numpy.asarray(weights[key + ".filter"], dtype=F32)
            masktype, groups = colour_mask(layer, input_dim, self.dim, q_levels)
            if masktype is not None:
                w = w * make_mask(w.shape, masktype, groups=groups)
            return w, numpy.asarray(weights[key + ".b"], dtype=F32)

        self.conditional = prefix + ".hcond1.W" in weights
        self.condition_dim = get("hcond1", ".W").shape[0] if self.conditional else 0
        # the condition map (models.gated_pixel_cnn.spatial_condition): A and P
        self.has_map = prefix + ".condmap.P" in weights
        if self.has_map:
            self.map_weights = (get("condmap", ".W"), get("condmap", ".P"))
        k = FIRST_FILTER_SIZE // 2 + self.sees_current_pixel   # pixels j-3 .. j-1 (and j)
        hw, hb = get("hstack1")
        self.h1 = (tap_matrix(hw, range(k)), hb)                 # (k * input_dim, 2p)
        self.layers = []  # per stack layer 1 .. num_layers-1
        for i in range(1, num_layers):
            layer = {"v": get("vstack%d" % i), "v2h": get("v2h%d" % i)}
            if i > 1:
                hw, hb = get("hstack%d" % i)
                layer["h"] = (tap_matrix(hw, (0, 1)), hb)            # (2p, 2p): columns j-1, j
                layer["h2h"] = get("h2hstack%d" % i)
            if self.conditional:
                layer["hcond"] = get("hcond%d" % i, ".W")
                # the last vertical gate feeds nothing, so it has no condition matrix
                layer["vcond"] = get("vcond%d" % i, ".W") if i < num_layers - 1 \
                    else numpy.zeros_like(layer["hcond"])
            if self.has_map:
                layer["hmap"] = get("hcondmap%d" % i, ".W")
                layer["vmap"] = get("vcondmap%d" % i, ".W") if i < num_layers - 1 \
                    else numpy.zeros_like(layer["hmap"])
            self.layers.append(layer)
        self.c1, self.c2 = get("combined_stack1"), get("combined_stack2")

    # ----- condition ------------------------------------------------------------------
    def _condition_biases(self, batch, width, condition):
        """Per layer (vertical, horizontal) biases (batch, 1, 2p); zeros when unconditional."""
        if not self.conditional:
            if condition is not None:
                raise ValueError("this model is unconditional; pass condition=None")
            zero = numpy.zeros((batch, 1, 2 * self.dim), dtype=F32)
            return [(zero, zero) for _ in self.layers]
        if condition is None:
            raise ValueError("this model needs a condition of {} values per image".format(
                self.condition_dim))
        h = numpy.broadcast_to(numpy.asarray(condition, dtype=F32),
                               (batch, self.condition_dim))
        if self.has_map:   # S (batch, map rows, width, K); its biases are taken row by row
            A, P = self.map_weights
            if width > P.shape[1]:
                raise ValueError("the condition map covers {} columns, not {}".format(
                    P.shape[1], width))
            self.spatial = (P[None, :, :width] * h.dot(A)[:, None, None, :]).astype(F32)
        return [(h.dot(layer["vcond"])[:, None].astype(F32),
                 h.dot(layer["hcond"])[:, None].astype(F32)) for layer in self.layers]

    def _map_bias(self, n, stack, row):
        """Layer n's condition-map bias at image row ``row``: (batch, W, 2p); 0
        without a map."""
        if not self.has_map:
            return 0
        return self.spatial[:, row].dot(self.layers[n][stack + "map"]).astype(F32)

    # ----- vertical stack: one row per layer per image row ---------------------------
    def start(self, batch, width, condition=None):
        """Reset the caches for a new batch; condition (batch, condition_dim) or
        (condition_dim,) for all images, None when unconditional."""
        k = FIRST_FILTER_SIZE // 2
        self.biases = self._condition_biases(batch, width, condition)
        self.row = 0   # the image row being drawn
        # image rows i-3..i and, per layer, gated vertical rows i-1..i: zero padding at first
        self.image_rows = numpy.zeros((batch, k + 1, width, self.input_dim), dtype=F32)
        self.v_rows = [numpy.zeros((batch, 2, width, self.dim), dtype=F32)
                       for _ in self.layers]
        self.above = self._vertical()

    def finish_row(self, image_row):
        """image_row (batch, width, input_dim) float32 inputs -> caches for the next row."""
        self.above = self._vertical(image_row)

    def _vertical(self, image_row=None):
        """Link maps ``(batch, width, 2p)`` for the next row, one per layer.

        With ``image_row``, first push that finished row, then push each
        layer's new gated row (computed from the same pre-activation row).
        """
        def push(rows, row):
            return numpy.concatenate([rows[:, 1:], row[:, None]], axis=1)

        if image_row is not None:
            self.image_rows = push(self.image_rows, image_row)
        below, pad = self.image_rows, FIRST_FILTER_SIZE // 2
        above = []
        for n, layer in enumerate(self.layers):
            pre = row_conv(below, layer["v"][0], layer["v"][1], pad)        # (batch, W, 2p)
            above.append(pointwise(pre, layer["v2h"]))
            if image_row is not None:
                self.v_rows[n] = push(self.v_rows[n], gate(
                    pre + self.biases[n][0] + self._map_bias(n, "v", self.row)))
            below, pad = self.v_rows[n], FILTER_SIZE // 2
        if image_row is not None:
            self.row += 1
        return above

    # ----- horizontal stack: one column per layer per pixel ---------------------------
    def _h_map(self, n, j):
        """Layer n's horizontal condition-map bias at column j of the row: (batch, 2p)."""
        return self.h_map[n][:, j] if self.has_map else 0

    def start_row(self):
        """Clear the row's pixels and horizontal columns; take the row's
        horizontal condition-map biases, (batch, W, 2p) per layer."""
        k = FIRST_FILTER_SIZE // 2
        batch, width = self.above[0].shape[:2]
        self.row_inputs = numpy.zeros((batch, width + k, self.input_dim), dtype=F32)
        self.h = [numpy.zeros((batch, width + 1, self.dim), dtype=F32)
                  for _ in self.layers]  # column c stored at c + 1
        self.h_map = [self._map_bias(n, "h", self.row) for n in range(len(self.layers))]

    def pixel_logits(self, j):
        """Logits (batch, input_dim, q_levels) of pixel j of the current row."""
        k = FIRST_FILTER_SIZE // 2 + self.sees_current_pixel
        batch = len(self.row_inputs)
        weight, bias = self.h1
        taps = self.row_inputs[:, j:j + k].reshape(batch, -1)   # pixels j-3 .. j-1 (and j)
        pre = taps.dot(weight) + bias
        h = gate(pre + self.above[0][:, j] + self.biases[0][1][:, 0] + self._h_map(0, j))
        self.h[0][:, j + 1] = h
        for n in range(1, len(self.layers)):
            layer = self.layers[n]
            weight, bias = layer["h"]
            prev = self.h[n - 1][:, j:j + 2].reshape(batch, -1)  # columns j-1 and j
            pre = prev.dot(weight) + bias
            gated = gate(pre + self.above[n][:, j] + self.biases[n][1][:, 0]
                         + self._h_map(n, j))
            h = pointwise(gated, layer["h2h"]) + h
            self.h[n][:, j + 1] = h
        hidden = leaky_relu(pointwise(h, self.c1))
        logits = pointwise(hidden, self.c2)
        return logits.reshape(len(logits), self.input_dim, self.q_levels)
