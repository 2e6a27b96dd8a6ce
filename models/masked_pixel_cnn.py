"""MaskedPixelCNN: the PixelCNN of the PixelRNN paper, made of masked convolutions only.

Input ``(batch, height, width, input_dim)``; output logits ``(batch, height,
width, input_dim, Q_LEVELS)``, or ``(batch, height, width, input_dim)`` when
``Q_LEVELS`` is None (the layouts of ``models.pixel_conv.pixelConv``).

Graph (inside, Theano layout ``(batch, channels, height, width)``), the
PixelCNN of "Pixel Recurrent Neural Networks" (van den Oord et al. 2016,
figure 5, section 3.5), with DIM = 2h maps in the residual stream::

    7x7 conv, mask 'a'                     input_dim -> 2h      <name>.first
    num_layers x residual block:           2h -> 2h
        relu, 1x1 conv, mask 'b'           2h -> h              <name>.layerN.reduce
        relu, 3x3 conv, mask 'b'           h -> h               <name>.layerN.conv
        relu, 1x1 conv, mask 'b'           h -> 2h              <name>.layerN.expand
        added to the block's input
    relu, 1x1 conv, mask 'b'               2h -> 2h             <name>.output1
    relu, 1x1 conv, mask 'b'               2h -> input_dim * Q  <name>.output2

"relu" is the project's ReLU (``lib.ops.relu``: slope 1e-5 below zero, the
original code's). The output head (relu, 1x1, relu, 1x1) is shared with the
PixelRNNs.

Colours. Every masked conv uses ``colour_groups = input_dim`` (see
``lib.layers``): DIM maps are split into input_dim groups, and the last layer's
channel ``d * Q_LEVELS + q`` is in group d, so reshaping it to ``(input_dim,
Q_LEVELS)`` puts colour d's logits in row d. At its own pixel, colour d's
prediction sees only colours < d of the input. DIM must be even, with
h = DIM / 2 >= input_dim.

The blind spot. Stacked masked convolutions reach up-right only one column per
layer: from pixel (i, j) the 7x7 first layer reaches rows i-3 .. i-1 up to
column j + 3, and each 3x3 layer adds one row up and one column right. With L
3x3 layers row i - d (1 <= d <= 3 + L) is reached up to column
``j + 3 + min(L, d - 1)``; the earlier pixels right of that are never seen
(#), e.g. L = 1 (rows above i - 4 are out of reach altogether)::

               j-4     j      j+4
    row i-4    . . . . . . . . . # #
    row i-3    . . . . . . . . . # #
    row i-2    . . . . . . . . . # #
    row i-1    . . . . . . . . # # #
    row i      . . . . x
"""
from lib.layers import Conv2D, Layer, WrapperLayer
from lib.ops import apply_activation

FIRST_FILTER_SIZE = 7
FILTER_SIZE = 3
MIN_LAYERS = 0  # residual blocks; 0 leaves the 7x7 layer and the output head


def image_to_maps(X):
    """``(batch, height, width, channels)`` -> ``(batch, channels, height, width)``."""
    return X.dimshuffle(0, 3, 1, 2)


def maps_to_logits(Y, input_dim, Q_LEVELS):
    """``(batch, input_dim * Q_LEVELS, height, width)`` -> ``(batch, height,
    width, input_dim, Q_LEVELS)``; with Q_LEVELS None, ``(batch, input_dim, H,
    W)`` -> ``(batch, H, W, input_dim)``. Channel ``d * Q_LEVELS + q`` becomes
    ``[..., d, q]``."""
    out = Y.dimshuffle(0, 2, 3, 1)
    if Q_LEVELS is None:
        return out
    return out.reshape((out.shape[0], out.shape[1], out.shape[2], input_dim, Q_LEVELS))


def check_sizes(input_dim, DIM, Q_LEVELS):
    """Raise ValueError unless DIM = 2h is even with h >= input_dim (one group of maps
    per colour) and Q_LEVELS >= 2."""
    if input_dim < 1 or DIM % 2 or DIM // 2 < input_dim:
        raise ValueError("DIM is the residual stream's 2h: it must be even with "
                         "1 <= input_dim <= h = DIM/2, got input_dim={}, DIM={}".format(
                             input_dim, DIM))
    if Q_LEVELS is not None and Q_LEVELS < 2:
        raise ValueError("Q_LEVELS must be None or >= 2, got {}".format(Q_LEVELS))


class MaskedStack(Layer):
    """Shared plumbing of the masked models: a ``masked_conv`` helper that names
    the layers ``<name>.<suffix>`` and collects their parameters in order."""

    def __init__(self, input_dim, name):
        Layer.__init__(self, name)
        self.colour_groups = input_dim
        self.layers = {}  # suffix -> Layer, in construction order

    def add(self, layer, suffix):
        """Record a sub-layer built with name ``<name>.<suffix>``; returns it."""
        self.layers[suffix] = layer
        self.params += layer.params
        return layer

    def masked_conv(self, X, n_in, n_out, size, masktype, suffix, activation=None):
        """Same-size masked conv with colour groups: ``(batch, n_in, H, W)`` ->
        ``(batch, n_out, H, W)``; returns the Conv2D."""
        layer = Conv2D(WrapperLayer(X), n_in, n_out, size, border_mode="half",
                       masktype=masktype, activation=activation,
                       name=self.name + "." + suffix, colour_groups=self.colour_groups)
        return self.add(layer, suffix)

    def first_layer(self, image, input_dim, DIM):
        """7x7 mask-'a' conv: image ``(batch, H, W, input_dim)`` -> ``(batch, DIM, H, W)``."""
        return self.masked_conv(image_to_maps(image), input_dim, DIM, FIRST_FILTER_SIZE,
                                "a", "first").output()

    def output_layers(self, X, input_dim, DIM, Q_LEVELS, activation):
        """The head: relu, 1x1 mask 'b', relu, 1x1 mask 'b': ``(batch, DIM, H, W)`` ->
        logits ``(batch, H, W, input_dim, Q_LEVELS)`` (see :func:`maps_to_logits`)."""
        out_dim = input_dim if Q_LEVELS is None else input_dim * Q_LEVELS
        hidden = self.masked_conv(apply_activation(X, activation), DIM, DIM, 1, "b", "output1",
                                  activation).output()
        return maps_to_logits(self.masked_conv(hidden, DIM, out_dim, 1, "b", "output2").output(),
                              input_dim, Q_LEVELS)

    def expand(self, X, h, DIM, suffix, activation=None):
        """The end of a residual block: (``activation``, then) a 1x1 mask-'b' conv from
        ``h`` maps back to the stream's DIM = 2h: ``(batch, h, H, W)`` -> ``(batch, DIM,
        H, W)``."""
        return self.masked_conv(apply_activation(X, activation), h, DIM, 1, "b",
                                suffix).output()


class MaskedPixelCNN(MaskedStack):
    """PixelCNN of masked convolutions (see the module docstring).

    ``input_layer.output()`` is ``(batch, height, width, input_dim)``;
    ``output()`` is ``(batch, height, width, input_dim, Q_LEVELS)`` logits.
    ``num_layers`` counts the residual blocks (>= 0). Parameters:
    ``<name>.first``, ``<name>.layerN.{reduce,conv,expand}`` for N = 1 ..
    num_layers, ``<name>.output1``, ``<name>.output2``, each with ``.filter``
    and ``.b``. ``hidden_maps``: the residual stream ``(batch, DIM, H, W)``
    after the first layer and after each block.
    """

    def __init__(self, input_layer, input_dim, DIM, Q_LEVELS=None, num_layers=6,
                 activation="relu", name=""):
        MaskedStack.__init__(self, input_dim, name)
        check_sizes(input_dim, DIM, Q_LEVELS)
        if num_layers < MIN_LAYERS:
            raise ValueError("num_layers must be >= {}, got {}".format(MIN_LAYERS, num_layers))
        X = self.first_layer(input_layer.output(), input_dim, DIM)
        h = DIM // 2
        self.hidden_maps = [X]  # (batch, DIM, H, W) after each layer
        for n in range(1, num_layers + 1):
            block = "layer%d." % n
            a = self.masked_conv(apply_activation(X, activation), DIM, h, 1, "b",
                                 block + "reduce", activation).output()
            b = self.masked_conv(a, h, h, FILTER_SIZE, "b", block + "conv").output()
            X = X + self.expand(b, h, DIM, block + "expand", activation)
            self.hidden_maps.append(X)
        self.Y = self.output_layers(X, input_dim, DIM, Q_LEVELS, activation)

    def output(self):
        return self.Y

