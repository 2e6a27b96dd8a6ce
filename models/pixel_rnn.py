"""PixelRNN: Row LSTM and Diagonal BiLSTM layers and the models built on them.

Models take ``(batch, height, width, input_dim)`` images and return logits
``(batch, height, width, input_dim, Q_LEVELS)`` (or ``(batch, height, width,
input_dim)`` when ``Q_LEVELS`` is None), like ``pixelConv``. Inside, maps are
in Theano layout ``(batch, channels, height, width)``; the residual stream has
DIM = 2h maps and each LSTM h units, as in "Pixel Recurrent Neural Networks"
(van den Oord et al. 2016, section 3.5 and figure 5)::

    7x7 conv, mask 'a'             input_dim -> 2h                <name>.first
    num_layers x residual block:   2h -> 2h
        LSTM layer                 2h -> h          <name>.rowlstmN / <name>.diagbilstmN
        1x1 conv, mask 'b'         h -> 2h          <name>.<kind>N.expand
        added to the block's input
    relu, 1x1 conv, mask 'b'       2h -> 2h                       <name>.output1
    relu, 1x1 conv, mask 'b'       2h -> input_dim * Q_LEVELS     <name>.output2

LSTM cell. A recurrent layer with DIM hidden units computes ``4 * DIM`` gate
pre-activations per pixel, channel ``4 * k + g`` being gate g of unit k, gates
in the order (input, forget, output, candidate)::

    i, f, o = sigmoid(.), sigmoid(.), sigmoid(.);  g = tanh(.)
    c = f * c_prev + i * g;  h = o * tanh(c)

Keeping a unit's four gates adjacent keeps them in the unit's colour group
when DIM is a multiple of input_dim (required when input_dim > 1).

Row LSTM. Input-to-state: a 1x3 mask-'b' conv (the pixel and its left
neighbour) for all rows at once. State-to-state: a 1x3 conv of the previous
row's hidden state, inside a ``theano.scan`` over rows. Pixel (i, j) sees
hidden states (i-1, j-1 .. j+1), so its receptive field is a triangle widening
by one column per row up.

Diagonal BiLSTM. ``lib.skew.skew`` shifts row i right by i, so that each diagonal
becomes a column. Input-to-state: a 1x1 mask-'b' conv. State-to-state: a 2x1
conv of the previous skewed column, inside a ``theano.scan`` over columns; in
image coordinates pixel (i, j) sees hidden states (i-1, j) and (i, j-1), hence
everything above-left. The right-to-left direction runs on the width-flipped
map (its own parameters), is flipped back, then shifted down one row so that
(i, j) sees only rows < i of it; the two directions are summed.

The one gap. With the 7x7 mask-'a' first layer (as in the paper), the end of
the row above, (i-1, W-1), reaches row i only through first-layer features at
(i, W-4 .. W-1), right of (i, j) when j < W - 4; the right-to-left direction
reads it through features at (i-1, W-1) itself, which see none of it (grey) or
its colours but the last (RGB). So pixels (i, j) with j < W - 4 miss (i-1, W-1)
(grey) or its last colour (RGB); for width <= 4 every earlier pixel is seen.
"""

import theano
import theano.tensor as T

from lib.layers import Conv2D, Layer, WrapperLayer, conv_filter
from lib.skew import skew, unskew
from models.masked_pixel_cnn import MaskedStack, check_sizes

GATES = 4  # input, forget, output, candidate
MIN_LAYERS = 1  # LSTM layers, one per residual block


def shift_down(X):
    """Move every row one down, zeros in row 0: ``(batch, channels, height,
    width)`` -> same shape."""
    return T.concatenate([T.zeros_like(X[:, :, :1, :]), X[:, :, :-1, :]], axis=2)


def flip_width(X):
    """Mirror left-right: ``(batch, channels, height, width)`` -> same shape."""
    return X[:, :, :, ::-1]


def lstm_cell(gates, c_prev):
    """One LSTM update. gates ``(batch, 4 * DIM, length)`` with channel
    ``4 * k + g`` gate g of unit k (input, forget, output, candidate); c_prev
    ``(batch, DIM, length)``. Returns (h, c), both ``(batch, DIM, length)``."""
    g = gates.reshape((gates.shape[0], gates.shape[1] // GATES, GATES, gates.shape[2]))
    sigmoid = T.nnet.sigmoid
    c = sigmoid(g[:, :, 1]) * c_prev + sigmoid(g[:, :, 0]) * T.tanh(g[:, :, 3])
    return sigmoid(g[:, :, 2]) * T.tanh(c), c


def conv_1d(h, filter_, axis_padding):
    """Unmasked cross-correlation of ``(batch, DIM, length)`` states along
    their last axis laid out as rows (``axis_padding = (0, p)``: a ``(4*DIM,
    DIM, 1, k)`` filter) or as columns (``(p, 0)``: a ``(4*DIM, DIM, k, 1)``
    filter). Returns ``(batch, 4*DIM, length')`` with ``length' = length + 2p
    - k + 1``."""
    if axis_padding[0] == 0:
        out = T.nnet.conv2d(h.dimshuffle(0, 1, "x", 2), filter_, border_mode=axis_padding,
                            filter_flip=False)
        return out[:, :, 0, :]
    out = T.nnet.conv2d(h.dimshuffle(0, 1, 2, "x"), filter_, border_mode=axis_padding,
                        filter_flip=False)
    return out[:, :, :, 0]


def check_hidden(DIM, colour_groups):
    """Raise ValueError unless DIM splits evenly into the colour groups."""
    if DIM % colour_groups:
        raise ValueError("LSTM layers need DIM ({}) to be a multiple of input_dim ({})".format(
            DIM, colour_groups))


class RecurrentLayer(Layer):
    """Shared parts of the LSTM layers: the masked input-to-state conv and the
    unmasked state-to-state filter, named ``<name>.input_to_state.{filter,b}``
    and ``<name>.state_to_state.filter``."""

    def __init__(self, input_layer, input_channels, DIM, colour_groups, name,
                 input_size, state_size):
        Layer.__init__(self, name)
        check_hidden(DIM, colour_groups)
        self.DIM = DIM
        self.X = input_layer.output()
        padding = (0, input_size[1] // 2)
        self.input_to_state = Conv2D(input_layer, input_channels, GATES * DIM, input_size,
                                     border_mode=padding, masktype="b",
                                     name=name + ".input_to_state", colour_groups=colour_groups)
        self.state_param, self.state_filter = conv_filter(
            (GATES * DIM,) + (DIM,) + state_size, name=name + ".state_to_state.filter")
        self.params = self.input_to_state.params + [self.state_param]

    def initial_state(self, length):
        """Zeros ``(batch, DIM, length)``, never broadcastable (scan needs the
        step's output type)."""
        zeros = T.zeros((self.X.shape[0], self.DIM, length), dtype=theano.config.floatX)
        return T.unbroadcast(zeros, 0, 1, 2)

    def run(self, gates, length, step):
        """Scan ``step(gates_t, h_prev, c_prev, state_filter)`` over the first
        axis of the gates ``(steps, batch, 4*DIM, length)``; returns the hidden
        states ``(steps, batch, DIM, length)``."""
        zeros = self.initial_state(length)
        (h, _), _ = theano.scan(step, sequences=[gates], outputs_info=[zeros, zeros],
                                non_sequences=[self.state_filter])
        return h

    def output(self):
        return self.Y


class RowLSTM(RecurrentLayer):
    """Row LSTM layer: ``(batch, input_channels, H, W)`` -> hidden states
    ``(batch, DIM, H, W)``. Input-to-state 1x3 mask 'b'; state-to-state 1x3
    over the previous row (see the module docstring)."""

    def __init__(self, input_layer, input_channels, DIM, colour_groups=1, name=""):
        RecurrentLayer.__init__(self, input_layer, input_channels, DIM, colour_groups, name,
                                input_size=(1, 3), state_size=(1, 3))
        gates = self.input_to_state.output().dimshuffle(2, 0, 1, 3)  # (H, batch, 4*DIM, W)
        h = self.run(gates, self.X.shape[3], self.step)              # (H, batch, DIM, W)
        self.Y = h.dimshuffle(1, 2, 0, 3)

    @staticmethod
    def step(gates_row, h_prev, c_prev, state_filter):
        """gates_row ``(batch, 4*DIM, W)``; h_prev, c_prev ``(batch, DIM, W)``
        of the row above. Returns (h, c) of this row."""
        return lstm_cell(gates_row + conv_1d(h_prev, state_filter, (0, 1)), c_prev)


class DiagonalLSTM(RecurrentLayer):
    """One direction (left to right) of the Diagonal BiLSTM: ``(batch,
    input_channels, H, W)`` -> ``(batch, DIM, H, W)``. In image coordinates::

        gates(i, j) = 1x1 mask-'b' conv of the input at (i, j)
                      + K[0] h(i-1, j) + K[1] h(i, j-1)
        (h, c)(i, j) = lstm_cell(gates(i, j), c(i, j-1))

    with h and c zero left of and above the image: the skew pads the gates
    (bias included) with zeros, and zero gates and states give c = 0, h = 0.
    The states right of the image are not zero but only feed states further
    right, which ``unskew`` drops.
    """

    def __init__(self, input_layer, input_channels, DIM, colour_groups=1, name=""):
        RecurrentLayer.__init__(self, input_layer, input_channels, DIM, colour_groups, name,
                                input_size=(1, 1), state_size=(2, 1))
        gates = skew(self.input_to_state.output())                # (batch, 4*DIM, H, W+H-1)
        h = self.run(gates.dimshuffle(3, 0, 1, 2), self.X.shape[2], self.step)
        self.Y = unskew(h.dimshuffle(1, 2, 3, 0))                  # (batch, DIM, H, W)

    @staticmethod
    def step(gates_column, h_prev, c_prev, state_filter):
        """gates_column ``(batch, 4*DIM, H)`` of skewed column t; h_prev, c_prev
        ``(batch, DIM, H)`` of column t - 1. Filter row 0 weighs skewed row
        i - 1, row 1 weighs row i. Returns (h, c) of column t."""
        return lstm_cell(gates_column + conv_1d(h_prev, state_filter, (1, 0))[:, :, :-1],
                         c_prev)


class DiagonalBiLSTM(Layer):
    """Both directions: ``(batch, input_channels, H, W)`` -> ``(batch, DIM, H,
    W)``, the left-to-right states plus the right-to-left ones shifted down a
    row. Sub-layers ``<name>.l2r`` and ``<name>.r2l``."""

    def __init__(self, input_layer, input_channels, DIM, colour_groups=1, name=""):
        Layer.__init__(self, name)
        X = input_layer.output()
        self.left = DiagonalLSTM(input_layer, input_channels, DIM, colour_groups, name + ".l2r")
        self.right = DiagonalLSTM(WrapperLayer(flip_width(X)), input_channels, DIM,
                                  colour_groups, name + ".r2l")
        self.params = self.left.params + self.right.params
        self.Y = self.left.output() + shift_down(flip_width(self.right.output()))

    def output(self):
        return self.Y


class PixelRNN(MaskedStack):
    """First 7x7 mask-'a' conv, ``num_layers`` residual blocks around LSTM layers of
    class ``recurrent_layer``, the relu/1x1 output head (module docstring).

    ``input_layer.output()`` is ``(batch, height, width, input_dim)``;
    ``output()`` is ``(batch, height, width, input_dim, Q_LEVELS)`` logits.
    DIM is the residual stream's 2h (even; each LSTM has h = DIM / 2 units, a
    multiple of input_dim). Parameters ``<name>.first``, ``<name>.<kind>N...``
    (the LSTM), ``<name>.<kind>N.expand``, ``<name>.output1/2``.
    """

    recurrent_layer = None  # RowLSTM or DiagonalBiLSTM
    kind = None             # layer name prefix

    def __init__(self, input_layer, input_dim, DIM, Q_LEVELS=None, num_layers=2,
                 activation="relu", name=""):
        MaskedStack.__init__(self, input_dim, name)
        check_sizes(input_dim, DIM, Q_LEVELS)
        h = DIM // 2
        check_hidden(h, input_dim)
        if num_layers < MIN_LAYERS:
            raise ValueError("num_layers must be >= {}, got {}".format(MIN_LAYERS, num_layers))
        X = self.first_layer(input_layer.output(), input_dim, DIM)
        self.hidden_maps = [X]  # (batch, DIM, H, W) after each layer
        for n in range(1, num_layers + 1):
            suffix = "%s%d" % (self.kind, n)
            lstm = self.recurrent_layer(WrapperLayer(X), DIM, h, input_dim,
                                        name=self.name + "." + suffix)
            states = self.add(lstm, suffix).output()                 # (batch, h, H, W)
            X = X + self.expand(states, h, DIM, suffix + ".expand")
            self.hidden_maps.append(X)
        self.Y = self.output_layers(X, input_dim, DIM, Q_LEVELS, activation)

    def output(self):
        return self.Y


class RowLSTMPixelRNN(PixelRNN):
    """PixelRNN with Row LSTM layers ``<name>.rowlstmN``."""
    recurrent_layer = RowLSTM
    kind = "rowlstm"


class DiagonalBiLSTMPixelRNN(PixelRNN):
    """PixelRNN with Diagonal BiLSTM layers ``<name>.diagbilstmN``."""
    recurrent_layer = DiagonalBiLSTM
    kind = "diagbilstm"
