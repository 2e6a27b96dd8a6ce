"""The gated PixelCNN again, channels-last and built from large matrix products.

The same model as ``models.gated_pixel_cnn.GatedPixelCNN`` (read its
docstring for the block): the same parameters (names, shapes, order and
initial values for the same ``numpy.random`` seed), the same outputs and
gradients to float32 rounding. The layout is that of
``models.fast_pixel_conv``: activations are ``(batch * rows * width,
channels)`` matrices, each convolution one product with a patch matrix
(``kernels.patches``), the vertical stack computed for ``height + 1`` rows and
read through two row offsets instead of two crops.

One product computes the whole pre-activation of a horizontal layer,
``hconv(h_in) + v2h(vertical rows < r) + V_h^T h`` (``+ S . M_h`` with a
condition map) plus both biases: the patch matrix holds, side by side, the
horizontal taps, the vertical map at the same position, the condition vector
of the image and the condition map's row at the position.
"""
import theano.tensor as T

from kernels.gate import gate
from kernels.channels_last import activate, as_map, conv1x1, conv_sum, conv_weights, to_map
from lib.layers import Layer
from models.gated_pixel_cnn import (check_arguments, colour_mask, condition_matrix,
                                    spatial_condition)

FIRST_FILTER_SIZE = 7
FILTER_SIZE = 3


class FastGatedPixelCNN(Layer):
    """Channels-last GatedPixelCNN; constructor and parameters as ``GatedPixelCNN``'s.

    input_layer: output ``(batch, H, W, input_dim)``; condition: ``(batch,
    condition_dim)`` or None; condition_map: None or ``(H, W, K)``.
    ``output()``: logits ``(batch, H, W, input_dim, Q_LEVELS)``.
    """

    def __init__(self, input_layer, input_dim, DIM, Q_LEVELS, num_layers=10,
                 condition=None, condition_dim=0, name="", condition_map=None):
        Layer.__init__(self, name)
        check_arguments(num_layers, Q_LEVELS, condition, condition_dim, input_dim, DIM,
                        condition_map)
        self.DIM, self.num_layers = DIM, num_layers
        self.input_dim, self.Q_LEVELS = input_dim, Q_LEVELS
        self.condition, self.condition_dim = condition, condition_dim
        self.condition_map = condition_map

        X = input_layer.output()                          # (batch, H, W, input_dim)
        self.shape = (X.shape[0], X.shape[1], X.shape[2])
        batch, height, width = self.shape
        if condition is not None:                         # h at every position
            self.condition_tiled = as_map(T.alloc(condition.dimshuffle(0, "x", "x", 1),
                                                  batch, height, width, condition_dim))
        if condition_map is not None:
            self.spatial = spatial_condition(self.params, name, condition, condition_dim,
                                             condition_map, height, width)  # (batch, H, W, K)
        pixels = as_map(X)

        k = FIRST_FILTER_SIZE
        X_v, link = self._vertical(pixels, input_dim, (k // 2 + 1, k), 1)
        f, b, taps = self._conv_weights("hstack1", (2 * DIM, input_dim, 1, k))
        X_h = self._horizontal(1, ([pixels], f, taps, (0, -(k // 2))), b, link)
        for i in range(2, num_layers):
            k = FILTER_SIZE
            X_v, link = self._vertical(X_v, DIM, (k // 2 + 1, k), i)
            f, b, taps = self._conv_weights("hstack%d" % i, (2 * DIM, DIM, 1, k // 2 + 1))
            h_in = as_map(to_map(X_h, batch, height, width))
            gated = self._horizontal(i, ([h_in], f, taps, (0, -(k // 2))), b, link)
            f, b, _ = self._conv_weights("h2hstack%d" % i, (DIM, DIM, 1, 1))
            X_h = conv1x1(gated, f, b) + X_h              # residual

        f, b, _ = self._conv_weights("combined_stack1", (DIM, DIM, 1, 1))
        hidden = activate(conv1x1(X_h, f, b), "relu")
        f, b, _ = self._conv_weights("combined_stack2", (input_dim * Q_LEVELS, DIM, 1, 1))
        self.Y = conv1x1(hidden, f, b).reshape((batch, height, width, input_dim, Q_LEVELS))

    # ----- parameters (created in GatedPixelCNN's order) -----------------------------
    def _conv_weights(self, suffix, shape):
        """``<name>.<suffix>.filter`` and ``.b`` as ``Conv2D`` creates them, with the
        layer's mask (``colour_mask``); returns (filter as used, bias, kept taps)."""
        masktype, groups = colour_mask(suffix, self.input_dim, self.DIM, self.Q_LEVELS)
        param, used, b, taps = conv_weights(self.name + "." + suffix, shape, masktype, groups)
        self.params += [param, b]
        return used, b, taps

    def _condition_weights(self, stack, i):
        """V of ``<stack>cond<i>`` (condition_dim, 2p), or None where there is none."""
        if self.condition is None or (stack == "v" and i == self.num_layers - 1):
            return None
        V = condition_matrix(self.condition_dim, 2 * self.DIM,
                             "%s.%scond%d.W" % (self.name, stack, i))
        self.params.append(V)
        return V

    def _map_weights(self, stack, i):
        """W of ``<stack>condmap<i>`` (K, 2p) with a condition map, else None."""
        if self.condition_map is None:
            return None
        M = condition_matrix(self.condition_map[2], 2 * self.DIM,
                             "%s.%scondmap%d.W" % (self.name, stack, i))
        self.params.append(M)
        return M

    # ----- layers ------------------------------------------------------------------
    def _vertical(self, x, n_in, size, i):
        """Vertical layer i on the map x: returns the gated map (rows <= r) and the
        link (pre-activation map whose row r' sees rows < r', over ``height + 1``
        rows, with the v2h weights that read it)."""
        batch, height, width = self.shape
        rows, cols = size
        f, b, taps = self._conv_weights("vstack%d" % i, (2 * self.DIM, n_in, rows, cols))
        pre = to_map(conv_sum([([x], f, taps, (-rows, -(cols // 2)))], [b], extra_rows=1),
                     batch, height + 1, width)            # (batch, H + 1, W, 2p)
        V = self._condition_weights("v", i)
        gate_in = pre if V is None else pre + T.dot(self.condition, V)[:, None, None, :]
        M = self._map_weights("v", i) if V is not None else None
        if M is not None:   # pre row r + 1 is image row r
            bias = T.dot(self.spatial, M)
            gate_in = T.inc_subtensor(gate_in[:, 1:], bias)
        v2h_filter, v2h_bias, _ = self._conv_weights("v2h%d" % i,
                                                     (2 * self.DIM, 2 * self.DIM, 1, 1))
        return as_map(gate(gate_in), 1, 0), (pre, v2h_filter, v2h_bias)

    def _horizontal(self, i, conv_term, conv_bias, link):
        """gate(hconv + v2h(link rows < r) + V_h^T h): ``(batch * H * W, p)``."""
        pre, v2h_filter, v2h_bias = link
        terms = [conv_term, ([as_map(pre, 0, 1)], v2h_filter[:, :, 0, 0].T, None, None)]
        V = self._condition_weights("h", i)
        if V is not None:
            terms.append(([self.condition_tiled], V, None, None))
            M = self._map_weights("h", i)
            if M is not None:
                terms.append(([as_map(self.spatial)], M, None, None))
        return gate(conv_sum(terms, [conv_bias, v2h_bias]))

    def output(self):
        return self.Y
