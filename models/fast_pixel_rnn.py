"""The PixelRNN paper's models again, channels-last: masked PixelCNN, Row LSTM, Diagonal BiLSTM.

The same models as ``models.masked_pixel_cnn.MaskedPixelCNN`` and
``models.pixel_rnn``'s ``RowLSTMPixelRNN`` and ``DiagonalBiLSTMPixelRNN``
(read their docstrings for the blocks): the same parameters (names, shapes,
order and initial values for the same ``numpy.random`` seed), the same
outputs and gradients to float32 rounding. The layout is that of
``models.fast_pixel_conv``: the residual stream is a ``(batch * H * W,
DIM)`` matrix, so

* every 1x1 layer is one product with a ``(DIM_in, DIM_out)`` matrix (the
  colour masks, where there are any, already in the matrix);
* the 7x7 mask-'a' and 3x3 mask-'b' layers and the Row LSTM's 1x3
  input-to-state layer are one product of a patch matrix (``kernels.patches``)
  holding only the taps their masks keep (24 of 49, 5 of 9, 2 of 3);
* each LSTM layer is one op (``kernels.lstm``) that runs the recurrence in C,
  instead of a ``scan`` of small convolutions;
* the Diagonal BiLSTM's right-to-left states are shifted down a row by the
  patch matrix of the 1x1 layer after it, which reads them one row up.

Input ``(batch, height, width, input_dim)``; output logits ``(batch, height,
width, input_dim, Q_LEVELS)`` (or ``(..., input_dim)`` when Q_LEVELS is None).
"""
from kernels.lstm import lstm_scan
from kernels.channels_last import (activate, as_map, causal_conv, conv1x1, conv_sum, conv_weights,
                               filter_matrix, kept_taps, to_map)
from lib.layers import Layer, channel_groups, conv_filter
from models import masked_pixel_cnn, pixel_rnn
from models.masked_pixel_cnn import FIRST_FILTER_SIZE, FILTER_SIZE, check_sizes

GATES = pixel_rnn.GATES


class FastMaskedStack(Layer):
    """Shared parts: parameters created as the faithful layers create them, the
    first layer and the output head, on ``(batch * H * W, channels)`` matrices."""

    def __init__(self, input_layer, input_dim, DIM, Q_LEVELS, num_layers, min_layers,
                 activation, name):
        Layer.__init__(self, name)
        check_sizes(input_dim, DIM, Q_LEVELS)
        if num_layers < min_layers:
            raise ValueError("num_layers must be >= {}, got {}".format(min_layers, num_layers))
        self.input_dim, self.DIM, self.Q_LEVELS = input_dim, DIM, Q_LEVELS
        self.act = lambda x: activate(x, activation)  # noqa: E731
        image = input_layer.output()                      # (batch, H, W, input_dim)
        self.shape = (image.shape[0], image.shape[1], image.shape[2])
        self.image = image

    def weights(self, suffix, shape, masktype="b"):
        """``<name>.<suffix>.filter`` and ``.b`` as ``Conv2D`` creates them with the
        model's colour groups; returns (filter as used, bias, kept taps)."""
        groups = None
        if masktype is not None:
            groups = (channel_groups(shape[0], self.input_dim),
                      channel_groups(shape[1], self.input_dim))
        param, used, b, taps = conv_weights(self.name + "." + suffix, shape, masktype, groups)
        self.params += [param, b]
        return used, b, taps

    def as_map(self, matrix):
        """``(batch * H * W, C)`` -> the ``Map`` ``(batch, H, W, C)`` of ``kernels.patches``."""
        return as_map(to_map(matrix, *self.shape))

    def first_layer(self):
        """7x7 mask 'a': image -> ``(batch * H * W, DIM)``."""
        k = FIRST_FILTER_SIZE
        f, b, taps = self.weights("first", (self.DIM, self.input_dim, k, k), "a")
        return causal_conv([as_map(self.image)], f, b, taps, (-(k // 2), -(k // 2)))

    def conv1x1(self, x, n_in, n_out, suffix):
        """1x1 mask-'b' layer ``(positions, n_in)`` -> ``(positions, n_out)``."""
        f, b, _ = self.weights(suffix, (n_out, n_in, 1, 1))
        return conv1x1(x, f, b)

    def output_layers(self, X):
        """relu, 1x1, relu, 1x1: ``(batch * H * W, DIM)`` -> logits."""
        out_dim = self.input_dim if self.Q_LEVELS is None else self.input_dim * self.Q_LEVELS
        hidden = self.act(self.conv1x1(self.act(X), self.DIM, self.DIM, "output1"))
        out = self.conv1x1(hidden, self.DIM, out_dim, "output2")
        batch, height, width = self.shape
        if self.Q_LEVELS is None:
            return out.reshape((batch, height, width, self.input_dim))
        return out.reshape((batch, height, width, self.input_dim, self.Q_LEVELS))

    def output(self):
        return self.Y


class FastMaskedPixelCNN(FastMaskedStack):
    """Channels-last MaskedPixelCNN; constructor and parameters as ``MaskedPixelCNN``'s."""

    def __init__(self, input_layer, input_dim, DIM, Q_LEVELS=None, num_layers=6,
                 activation="relu", name=""):
        FastMaskedStack.__init__(self, input_layer, input_dim, DIM, Q_LEVELS, num_layers,
                                 masked_pixel_cnn.MIN_LAYERS, activation, name)
        act, h, k = self.act, DIM // 2, FILTER_SIZE
        X = self.first_layer()
        for n in range(1, num_layers + 1):
            block = "layer%d." % n
            a = act(self.conv1x1(act(X), DIM, h, block + "reduce"))
            f, b, taps = self.weights(block + "conv", (h, h, k, k))
            c = causal_conv([self.as_map(a)], f, b, taps, (-(k // 2), -(k // 2)))
            X = X + self.conv1x1(act(c), h, DIM, block + "expand")
        self.Y = self.output_layers(X)


class FastPixelRNN(FastMaskedStack):
    """Channels-last PixelRNN; constructor and parameters as ``models.pixel_rnn.PixelRNN``'s."""

    kind = None  # "rowlstm" or "diagbilstm"

    def __init__(self, input_layer, input_dim, DIM, Q_LEVELS=None, num_layers=2,
                 activation="relu", name=""):
        FastMaskedStack.__init__(self, input_layer, input_dim, DIM, Q_LEVELS, num_layers,
                                 pixel_rnn.MIN_LAYERS, activation, name)
        h = DIM // 2
        pixel_rnn.check_hidden(h, input_dim)
        X = self.first_layer()
        for n in range(1, num_layers + 1):
            X = X + self.block("%s%d" % (self.kind, n), X, h)
        self.Y = self.output_layers(X)

    def lstm(self, suffix, X, h, input_size, state_size, mode):
        """One LSTM direction: input-to-state conv (mask 'b', one row) of the stream
        ``(batch * H * W, DIM)``, then the recurrence: states ``(batch, H, W, h)``."""
        f, b, taps = self.weights(suffix + ".input_to_state", (GATES * h, self.DIM) + input_size)
        gates = causal_conv([self.as_map(X)], f, b, taps, (0, -(input_size[1] // 2)))
        state_param, state_filter = conv_filter((GATES * h, h) + state_size,
                                                name=self.name + "." + suffix +
                                                ".state_to_state.filter")
        self.params.append(state_param)
        taps = kept_taps((GATES * h, h) + state_size)     # every tap, row-major
        weights = filter_matrix(state_filter, taps).T     # (taps * h, 4h)
        return lstm_scan(mode, to_map(gates, *self.shape), weights)


class FastRowLSTMPixelRNN(FastPixelRNN):
    """Channels-last ``RowLSTMPixelRNN``."""

    kind = "rowlstm"

    def block(self, suffix, X, h):
        """Row LSTM, then 1x1 h -> DIM: the residual branch ``(batch * H * W, DIM)``."""
        states = self.lstm(suffix, X, h, (1, 3), (1, 3), "row")
        return self.conv1x1(states.reshape((-1, h)), h, self.DIM, suffix + ".expand")


class FastDiagonalBiLSTMPixelRNN(FastPixelRNN):
    """Channels-last ``DiagonalBiLSTMPixelRNN``."""

    kind = "diagbilstm"

    def block(self, suffix, X, h):
        """Both diagonal directions, then one 1x1 h -> DIM layer over the left-to-right
        states at each pixel and the right-to-left ones of the pixel above."""
        left = self.lstm(suffix + ".l2r", X, h, (1, 1), (2, 1), "l2r")
        right = self.lstm(suffix + ".r2l", X, h, (1, 1), (2, 1), "r2l")
        f, b, _ = self.weights(suffix + ".expand", (self.DIM, h, 1, 1))
        return conv_sum([([as_map(left)], f, [(0, 0)], (0, 0)),
                         ([as_map(right)], f, [(0, 0)], (-1, 0))], [b])
