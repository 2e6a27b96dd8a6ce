"""Gated PixelCNN: pixelConv's stacks with tanh x sigmoid gates and an optional condition.

Input ``(batch, height, width, input_dim)`` float32 in [0, 1]; output logits
``(batch, height, width, input_dim, Q_LEVELS)``. The optional condition is a
matrix ``(batch, condition_dim)`` (a one-hot class label or an embedding),
the same vector for every pixel of an image.

The block follows figure 2 of van den Oord et al. 2016, "Conditional Image
Generation with PixelCNN Decoders". With p = DIM feature maps per stack::

    vertical:    v_pre = vconv(v_in)                       (2p maps)
                 v_out = gate(v_pre + V_v^T h)              (p maps)
    link:        above = v2h(v_pre shifted down one row)    (1x1, 2p -> 2p)
    horizontal:  h_pre = hconv(h_in) + above + V_h^T h      (2p maps)
                 h_out = h2h(gate(h_pre)) + h_in            (1x1 linear, residual)

    gate(a) = tanh(a[:p]) * sigmoid(a[p:])     (first half: filter, second: gate)

The link to the horizontal stack is taken from the vertical stack's 2p
pre-activation maps (before the gate and without the condition), and the
condition enters each stack's gate as a learned per-image bias
``h . V`` of 2p values, added at every position.

Optionally (``condition_map = (H, W, K)``, not in the original code) the
condition also gets a say in *where* things go, as in the paper's
location-dependent conditioning: a learned map P (H, W, K) of the positions
is mixed with K features of the condition, ``S[r, c] = P[r, c] * (h . A)``,
and every gate adds ``S[r, c] . M`` (M: K x 2p per layer and stack) at
position (r, c). S depends on the condition and the position only, never on
pixels, so causality is untouched. An image smaller than (H, W) uses P's top
left corner.

Causality uses the shift/crop trick of ``models.pixel_conv`` (read its module
docstring): the vertical convolutions run unmasked on zero-padded maps, and
the row-shifted crop (row r sees image rows < r) feeds the link, the other
crop (rows <= r) feeds the next vertical layer. The horizontal 1x2
convolutions are padded on both sides and cropped on the right (column c
sees columns c-1, c). Layer 1 is a 4x7 vertical convolution (a 7-wide window
over the 4 rows above) and a 1x7 mask-'a' horizontal convolution on the
pixels (columns c-3 .. c-1), joined with the link; it has no residual (its
input has ``input_dim`` channels). Because the link is a separate 1x1
convolution (not masked like pixelConv's ``hstack1``), column 0 sees the rows
above from the first layer on. No blind spot: the horizontal stack at (r, c)
covers everything the vertical stack covers above row r plus the pixels left
of c in row r.

Parameters (``<name>.<layer>.filter`` / ``.b``, filters
``(out, in, rows, cols)``)::

    vstack1  (2p, input_dim, 4, 7)   hstack1  (2p, input_dim, 1, 7)  mask 'a'
    v2h1     (2p, 2p, 1, 1)
    per block i = 2 .. num_layers-1:
    vstack{i} (2p, p, 2, 3)   v2h{i} (2p, 2p, 1, 1)
    hstack{i} (2p, p, 1, 2)   h2hstack{i} (p, p, 1, 1)
    combined_stack1 (p, p, 1, 1)  leaky ReLU
    combined_stack2 (input_dim * Q_LEVELS, p, 1, 1)  linear
    with a condition, for every layer i = 1 .. num_layers-1:
    vcond{i}.W, hcond{i}.W  (condition_dim, 2p)
    with a condition map, first condmap.W  (condition_dim, K), condmap.P  (H, W, K),
    and after each cond matrix: vcondmap{i}.W, hcondmap{i}.W  (K, 2p) (none after
    the last layer's vertical gate, which has no vcond either)

As in pixelConv, ``num_layers`` counts the stack layers plus the output
layers: there are ``num_layers - 1`` stack layers.

Colour (``input_dim`` = 3, R -> G -> B as in the PixelRNN paper). The p maps
of the horizontal stack are split into R, G and B groups (``lib.layers``), a
gate's 2p pre-activation maps so that maps c and c + p share the group of
gated map c. At the current pixel, group g may see only colours < g of the
image (mask 'a' on ``hstack1``'s centre tap) and groups <= g of the maps
(mask 'b' on the current-column taps of ``hstack{i}``, ``h2hstack{i}`` and
both output layers); ``combined_stack2``'s channel ``d * Q_LEVELS + q`` is in
group d. So the logits of colour d at a pixel see its colours < d and
everything before the pixel. The vertical stack sees only rows above and
needs no colour mask, and neither do the links ``v2h{i}``, which carry only
rows above too: every group of the horizontal stack reads all 2p vertical
maps, as in the paper. With ``input_dim`` = 1 none of these masks exists
and the model is unchanged (``colour_mask``).
"""
import re

import numpy
import theano
import theano.tensor as T

from lib.layers import Conv2D, Layer, WrapperLayer, channel_groups, gated_channel_groups, uniform

FIRST_FILTER_SIZE = 7  # layer 1's window width (4 rows above, 3 pixels to the left)
FILTER_SIZE = 3        # later layers: 2x3 vertical, 1x2 horizontal
MIN_LAYERS = 2         # num_layers - 1 stack layers: 2 leaves only layer 1


def gate(pre, dim):
    """tanh(first ``dim`` channels) * sigmoid(last ``dim``): (batch, 2*dim, H, W) ->
    (batch, dim, H, W)."""
    return T.tanh(pre[:, :dim]) * T.nnet.sigmoid(pre[:, dim:])


def colour_mask(suffix, input_dim, DIM, Q_LEVELS):
    """(masktype, groups) of layer ``suffix`` ("hstack1", "v2h3", ...) for
    ``Conv2D`` / ``lib.layers.make_mask``: the colour masks of the module
    docstring when ``input_dim`` > 1; else only ``hstack1``'s mask 'a'. The
    vertical stack and the links ``v2h{i}`` (rows above only) get none."""
    kind = suffix.rstrip("0123456789")
    if input_dim == 1:
        return ("a", None) if suffix == "hstack1" else (None, None)
    image = numpy.arange(input_dim)
    maps = channel_groups(DIM, input_dim)
    pre = gated_channel_groups(2 * DIM, input_dim)
    groups = {"hstack1": ("a", (pre, image)),
              "hstack": ("b", (pre, maps)),
              "h2hstack": ("b", (maps, maps)),
              "combined_stack": ("b", (maps, maps))}
    if suffix == "hstack1":
        return groups["hstack1"]
    if suffix == "combined_stack2":
        return "b", (channel_groups(input_dim * Q_LEVELS, input_dim), maps)
    return groups.get(kind, (None, None))


def check_arguments(num_layers, Q_LEVELS, condition, condition_dim, input_dim=1, DIM=None,
                    condition_map=None):
    """Raise ValueError for sizes no gated network can have."""
    if condition_map is not None and (condition is None or len(condition_map) != 3
                                      or min(condition_map) < 1):
        raise ValueError("condition_map must be (height, width, K >= 1) and needs a "
                         "condition, got {}".format(condition_map))
    if input_dim < 1 or (DIM is not None and DIM < input_dim):
        raise ValueError("need 1 <= input_dim <= DIM (one group of maps per colour), got "
                         "input_dim={}, DIM={}".format(input_dim, DIM))
    if num_layers < MIN_LAYERS:
        raise ValueError("GatedPixelCNN needs num_layers >= {}, got {}".format(
            MIN_LAYERS, num_layers))
    if Q_LEVELS < 2:
        raise ValueError("Q_LEVELS must be >= 2, got {}".format(Q_LEVELS))
    if (condition is None) != (condition_dim == 0):
        raise ValueError("give both a condition and condition_dim > 0, or neither")


def condition_matrix(condition_dim, out_dim, name):
    """Shared (condition_dim, out_dim) matrix V, Glorot-uniform."""
    stdev = numpy.sqrt(2.0 / (condition_dim + out_dim))
    return theano.shared(uniform(stdev, (condition_dim, out_dim)), name=name)


def spatial_condition(params, name, condition, condition_dim, condition_map, height, width):
    """Condition map S (batch, height, width, K) for ``condition_map = (H, W, K)``:
    ``S[b, r, c] = P[r, c] * (h_b . A)``, a rank-K mix of a learned per-position
    map P (H, W, K), initially all ones, and the condition's K features
    ``h . A``. Images smaller than (H, W) use P's top left corner. Appends A
    (``condmap.W``) and P (``condmap.P``) to ``params``."""
    rows, cols, k = condition_map
    A = condition_matrix(condition_dim, k, name + ".condmap.W")
    P = theano.shared(numpy.ones((rows, cols, k), dtype=theano.config.floatX),
                      name=name + ".condmap.P")
    params += [A, P]
    corner = P[:height, :width]
    return corner.dimshuffle("x", 0, 1, 2) * T.dot(condition, A).dimshuffle(0, "x", "x", 1)


class GatedPixelCNN(Layer):
    """Gated PixelCNN with vertical/horizontal stacks and an optional condition.

    input_layer: a layer whose output is ``(batch, H, W, input_dim)``;
    condition: a symbolic ``(batch, condition_dim)`` matrix or None;
    condition_map: None or ``(H, W, K)``, the per-position bias of the module
    docstring (needs a condition).
    ``output()``: logits ``(batch, H, W, input_dim, Q_LEVELS)``.

    For tests and the cached sampler the intermediate maps are kept, one per
    stack layer, in Theano's layout ``(batch, channels, H, W)``:
    ``vertical_maps`` (gated, row r sees image rows <= r; p channels),
    ``above_maps`` (the link into the horizontal stack, row r sees rows < r;
    2p channels), ``horizontal_maps`` (p channels, after the residual sum).
    """

    def __init__(self, input_layer, input_dim, DIM, Q_LEVELS, num_layers=10,
                 condition=None, condition_dim=0, name="", condition_map=None):
        Layer.__init__(self, name)
        check_arguments(num_layers, Q_LEVELS, condition, condition_dim, input_dim, DIM,
                        condition_map)
        self.input_dim, self.DIM, self.Q_LEVELS = input_dim, DIM, Q_LEVELS
        self.num_layers, self.condition, self.condition_dim = num_layers, condition, condition_dim
        self.condition_map = condition_map
        self.convs = {}       # layer name -> Conv2D
        self.cond_params = {}  # "vcond{i}" / "hcond{i}" -> shared (condition_dim, 2p),
        #                        "vcondmap{i}" / "hcondmap{i}" -> shared (K, 2p)
        self.vertical_maps, self.above_maps, self.horizontal_maps = [], [], []

        self.X = input_layer.output().dimshuffle(0, 3, 1, 2)  # (batch, input_dim, H, W)
        if condition_map is not None:
            self.spatial = spatial_condition(self.params, name, condition, condition_dim,
                                             condition_map, self.X.shape[2],
                                             self.X.shape[3])  # (batch, H, W, K)
        X_v, X_h = self._first_layer()
        for i in range(2, num_layers):
            X_v, X_h = self._block(i, X_v, X_h)
        self.Y = self._output_layers(X_h)

    # ----- pieces -----------------------------------------------------------------
    def _conv(self, inputs, n_in, n_out, size, border, suffix, activation=None):
        """Conv2D on a (batch, n_in, H, W) tensor, registered under ``suffix``, with
        the layer's mask (:func:`colour_mask`)."""
        masktype, groups = colour_mask(suffix, self.input_dim, self.DIM, self.Q_LEVELS)
        layer = Conv2D(WrapperLayer(inputs), n_in, n_out, size, border_mode=border,
                       masktype=masktype, activation=activation,
                       name=self.name + "." + suffix, groups=groups)
        self.convs[suffix] = layer
        self.params += layer.params
        return layer.output()

    def _conditioned(self, pre, stack, i):
        """pre (batch, 2p, H, W) plus the condition's bias (batch, 2p) at every position."""
        if self.condition is None or (stack == "v" and i == self.num_layers - 1):
            return pre  # the last vertical gate feeds nothing: no parameter for it
        suffix = "%scond%d" % (stack, i)
        V = condition_matrix(self.condition_dim, 2 * self.DIM, "%s.%s.W" % (self.name, suffix))
        self.cond_params[suffix] = V
        self.params.append(V)
        pre = pre + T.dot(self.condition, V)[:, :, None, None]
        if self.condition_map is None:
            return pre
        suffix = "%scondmap%d" % (stack, i)
        M = condition_matrix(self.condition_map[2], 2 * self.DIM,
                             "%s.%s.W" % (self.name, suffix))
        self.cond_params[suffix] = M
        self.params.append(M)
        return pre + T.dot(self.spatial, M).dimshuffle(0, 3, 1, 2)

    def _vertical(self, x, n_in, size, i):
        """Vertical layer i on x (batch, n_in, H, W): returns (gated map, rows <= r;
        link map, rows < r), shapes (batch, p, H, W) and (batch, 2p, H, W)."""
        rows, cols = size
        pre = self._conv(x, n_in, 2 * self.DIM, size, (rows, cols // 2), "vstack%d" % i)
        height = x.shape[2]                              # pre has height + rows + 1 rows
        v_out = gate(self._conditioned(pre[:, :, 1:height + 1], "v", i), self.DIM)
        above = self._conv(pre[:, :, :height], 2 * self.DIM, 2 * self.DIM, (1, 1), "valid",
                           "v2h%d" % i)
        self.vertical_maps.append(v_out)
        self.above_maps.append(above)
        return v_out, above

    def _first_layer(self):
        """Layer 1: 4x7 vertical, 1x7 mask-'a' horizontal on the pixels, gated; no residual."""
        k = FIRST_FILTER_SIZE
        X_v, above = self._vertical(self.X, self.input_dim, (k // 2 + 1, k), 1)
        pixels = self._conv(self.X, self.input_dim, 2 * self.DIM, (1, k), (0, k // 2),
                            "hstack1")       # mask 'a': columns c-3 .. c-1
        X_h = gate(self._conditioned(pixels + above, "h", 1), self.DIM)
        self.horizontal_maps.append(X_h)
        return X_v, X_h

    def _block(self, i, X_v, X_h):
        """Gated block i >= 2 on (batch, p, H, W) maps -> the next (X_v, X_h)."""
        k = FILTER_SIZE
        X_v_next, above = self._vertical(X_v, self.DIM, (k // 2 + 1, k), i)
        width = X_h.shape[3]
        left = self._conv(X_h, self.DIM, 2 * self.DIM, (1, k // 2 + 1), (0, k // 2),
                          "hstack%d" % i)[:, :, :, :width]  # columns c-1, c
        gated = gate(self._conditioned(left + above, "h", i), self.DIM)
        X_h_next = self._conv(gated, self.DIM, self.DIM, (1, 1), "valid",
                              "h2hstack%d" % i) + X_h
        self.horizontal_maps.append(X_h_next)
        return X_v_next, X_h_next

    def _output_layers(self, X_h):
        """Two 1x1 layers (leaky ReLU, linear): (batch, p, H, W) ->
        logits (batch, H, W, input_dim, Q_LEVELS)."""
        hidden = self._conv(X_h, self.DIM, self.DIM, (1, 1), "valid", "combined_stack1",
                            activation="relu")
        out = self._conv(hidden, self.DIM, self.input_dim * self.Q_LEVELS, (1, 1), "valid",
                         "combined_stack2").dimshuffle(0, 2, 3, 1)
        shape = out.shape
        return out.reshape((shape[0], shape[1], shape[2], self.input_dim, self.Q_LEVELS))

    def output(self):
        return self.Y


def infer_gated_config(arrays):
    """Config of the GatedPixelCNN whose parameters are ``{name: ndarray}``:
    ``{"model": "gated", "input_dim", "dim", "num_layers", "q_levels", "condition_dim"}``
    (condition_dim 0 when unconditional), plus ``"condition_map": K`` when the
    parameters hold a condition map."""
    layers = [int(m.group(1)) for m in
              (re.match(r".*\.vstack(\d+)\.filter$", n) for n in arrays) if m]
    first = [n for n in arrays if n.endswith(".vstack1.filter")]
    last = [n for n in arrays if n.endswith(".combined_stack2.filter")]
    links = [n for n in arrays if n.endswith(".v2h1.filter")]
    if not layers or len(first) != 1 or len(last) != 1 or len(links) != 1:
        raise ValueError("these parameters are not a GatedPixelCNN's (no unique vstack1 / "
                         "v2h1 / combined_stack2 filter)")
    two_dim, input_dim = arrays[first[0]].shape[:2]
    out_dim = arrays[last[0]].shape[0]
    if out_dim % input_dim:
        raise ValueError("combined_stack2 has {} outputs, not a multiple of input_dim {}".format(
            out_dim, input_dim))
    cond = [n for n in arrays if n.endswith(".hcond1.W")]
    config = {"model": "gated", "input_dim": int(input_dim), "dim": int(two_dim // 2),
              "num_layers": max(layers) + 1, "q_levels": int(out_dim // input_dim),
              "condition_dim": int(arrays[cond[0]].shape[0]) if cond else 0}
    maps = [n for n in arrays if n.endswith(".condmap.P")]
    if maps:
        config["condition_map"] = int(arrays[maps[0]].shape[2])
    return config
