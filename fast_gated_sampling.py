"""Cached sampling for the GatedPixelCNN: the naive sampler's draws, far less work.

The same scheme as ``fast_sampling`` (read its docstring), on the gated block
of ``models.gated_pixel_cnn``:

* Vertical stack, once per image row: after row i is drawn, layer 1 computes
  its new 2p pre-activation row from the last four image rows, later layers
  from the last two gated rows of the layer below. The pre-activation row is
  at once the next row's link (through the 1x1 ``v2h``) and, gated with the
  vertical condition bias, the new gated row passed up the stack.

* Horizontal stack, once per pixel: for pixel (i, j) every layer evaluates
  only column j from the link's column j, the pixels (i, j-3 .. j-1) (layer 1)
  or columns j-1, j of the layer below, and the horizontal condition bias.

The condition is fixed per image: its biases ``h . V`` (2p values per layer
and stack) are computed once in ``start``. NumPy float32 throughout, in the
layers' order of operations, so that the logits agree with Theano's to
float32 rounding and the inverse-CDF draws (``sampling.draw`` with
``sampling.uniforms_for``) give the naive sampler's images for the same seed.

Map layouts are channels-last: one row of a map is ``(batch, width, channels)``.
"""
import numpy

from fast_sampling import F32, leaky_relu, row_conv, sample_cached
from lib.layers import make_mask
from models.gated_pixel_cnn import FILTER_SIZE, FIRST_FILTER_SIZE


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


class CachedGatedPixelCNN(object):
    """GatedPixelCNN evaluated row by row and pixel by pixel from its weights.

    weights: ``{name: ndarray}`` with GatedPixelCNN's names under ``prefix``;
    the model is conditional when ``<prefix>.hcond1.W`` is among them.
    """

    def __init__(self, weights, prefix, num_layers, input_dim, q_levels):
        self.num_layers, self.input_dim, self.q_levels = num_layers, input_dim, q_levels

        def get(layer, suffix=None):
            key = prefix + "." + layer
            if suffix is not None:
                return numpy.asarray(weights[key + suffix], dtype=F32)
            return (numpy.asarray(weights[key + ".filter"], dtype=F32),
                    numpy.asarray(weights[key + ".b"], dtype=F32))

        self.dim = get("vstack1")[0].shape[0] // 2
        self.conditional = prefix + ".hcond1.W" in weights
        self.condition_dim = get("hcond1", ".W").shape[0] if self.conditional else 0
        hw, hb = get("hstack1")
        self.h1 = (hw * make_mask(hw.shape, "a"), hb)
        self.layers = []  # per stack layer 1 .. num_layers-1
        for i in range(1, num_layers):
            layer = {"v": get("vstack%d" % i), "v2h": get("v2h%d" % i)}
            if i > 1:
                layer["h"], layer["h2h"] = get("hstack%d" % i), get("h2hstack%d" % i)
            if self.conditional:
                layer["hcond"] = get("hcond%d" % i, ".W")
                # the last vertical gate feeds nothing, so it has no condition matrix
                layer["vcond"] = get("vcond%d" % i, ".W") if i < num_layers - 1 \
                    else numpy.zeros_like(layer["hcond"])
            self.layers.append(layer)
        self.c1, self.c2 = get("combined_stack1"), get("combined_stack2")

    # ----- condition ------------------------------------------------------------------
    def _condition_biases(self, batch, condition):
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
        return [(h.dot(layer["vcond"])[:, None].astype(F32),
                 h.dot(layer["hcond"])[:, None].astype(F32)) for layer in self.layers]

    # ----- vertical stack: one row per layer per image row ---------------------------
    def start(self, batch, width, condition=None):
        """Reset the caches for a new batch; condition (batch, condition_dim) or
        (condition_dim,) for all images, None when unconditional."""
        k = FIRST_FILTER_SIZE // 2
        self.biases = self._condition_biases(batch, condition)
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
                self.v_rows[n] = push(self.v_rows[n], gate(pre + self.biases[n][0]))
            below, pad = self.v_rows[n], FILTER_SIZE // 2
        return above

    # ----- horizontal stack: one column per layer per pixel ---------------------------
    def start_row(self):
        """Clear the row's pixels and horizontal columns."""
        k = FIRST_FILTER_SIZE // 2
        batch, width = self.above[0].shape[:2]
        self.row_inputs = numpy.zeros((batch, width + k, self.input_dim), dtype=F32)
        self.h = [numpy.zeros((batch, width + 1, self.dim), dtype=F32)
                  for _ in self.layers]  # column c stored at c + 1

    def pixel_logits(self, j):
        """Logits (batch, input_dim, q_levels) of pixel j of the current row."""
        k = FIRST_FILTER_SIZE // 2
        weight, bias = self.h1
        taps = self.row_inputs[:, j:j + k]                      # pixels j-3 .. j-1
        pre = numpy.einsum("bkc,ock->bo", taps, weight[:, :, 0, :k]) + bias
        h = gate(pre + self.above[0][:, j] + self.biases[0][1][:, 0])
        self.h[0][:, j + 1] = h
        for n in range(1, len(self.layers)):
            layer = self.layers[n]
            weight, bias = layer["h"]
            prev = self.h[n - 1][:, j:j + 2]                    # columns j-1 and j
            pre = numpy.einsum("bkc,ock->bo", prev, weight[:, :, 0, :]) + bias
            gated = gate(pre + self.above[n][:, j] + self.biases[n][1][:, 0])
            h = pointwise(gated, layer["h2h"]) + h
            self.h[n][:, j + 1] = h
        hidden = leaky_relu(pointwise(h, self.c1))
        logits = pointwise(hidden, self.c2)
        return logits.reshape(len(logits), self.input_dim, self.q_levels)

    def set_pixel(self, j, inputs):
        """Record the drawn pixel j of this row; inputs (batch, input_dim) float32."""
        self.row_inputs[:, j + FIRST_FILTER_SIZE // 2] = inputs


def sample_cached_gated(net, num, height, width, condition=None, seed=0, temperature=1.0,
                        progress=True, given=None):
    """Draw ``num`` images (num, height, width, input_dim) uint8 bins with a
    CachedGatedPixelCNN, in the order and with the random numbers of
    ``sampling.sample_naive``.

    condition: (num, condition_dim) one condition vector per image (or one
    (condition_dim,) vector for all), None for an unconditional model.
    With ``given`` (true bins of the same shape) each pixel is drawn given the
    true pixels before it (a reconstruction), instead of the drawn ones.
    """
    return sample_cached(net, num, height, width, seed=seed, temperature=temperature,
                         progress=progress, given=given, condition=condition)
