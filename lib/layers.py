"""Layers: WrapperLayer, Conv2D with masks 'a' and 'b', and Softmax.

Convolutions work on Theano's layout ``(batch, channels, height, width)``;
filters are ``(out_channels, in_channels, rows, cols)``.  Every layer has a
``name``, a ``params`` list of shared variables and an ``output()`` method.

Colour masks (PixelRNN paper, section 3.4). With ``colour_groups = G`` > 1 the
feature maps of every tensor are split into G consecutive groups, one per
colour: of a tensor with C channels, channel c belongs to group
``c * G // C``. For the image itself (C = G) that is the channel index
(R = 0, G = 1, B = 2); for a 1x1 output layer with ``G * Q_LEVELS`` channels
laid out as ``(G, Q_LEVELS)`` it is the colour whose logits the channel holds.
Only the centre tap is affected: output group g sees input group h there when
h < g (mask 'a') or h <= g (mask 'b'). ``colour_groups=1`` gives exactly the
plain masks.
"""
import numpy
import theano
import theano.tensor as T

from lib.ops import apply_activation, floatX


def uniform(stdev, size, rng=numpy.random):
    """Float32 array of ``size`` drawn uniformly with standard deviation ``stdev``."""
    bound = stdev * numpy.sqrt(3)
    return rng.uniform(low=-bound, high=bound, size=size).astype(theano.config.floatX)


def channel_groups(channels, colour_groups):
    """Colour group of each of ``channels`` feature maps: int array ``(channels,)``.

    Channel c belongs to group ``c * colour_groups // channels`` (consecutive,
    near-equal blocks); every group must get at least one channel.
    """
    if colour_groups < 1 or channels < colour_groups:
        raise ValueError("cannot split {} channels into {} colour groups".format(
            channels, colour_groups))
    return numpy.arange(channels) * colour_groups // channels


def gated_channel_groups(channels, colour_groups):
    """Colour groups of the ``2p`` pre-activation maps of a gate ``tanh(a[:p]) *
    sigmoid(a[p:])``: channel c and c + p belong to the group of gated map c
    (``channel_groups(p, colour_groups)``), so that each gated map stays in its
    colour. int array ``(channels,)``."""
    if channels % 2:
        raise ValueError("a gate's pre-activation needs an even number of maps, got {}".format(
            channels))
    return numpy.tile(channel_groups(channels // 2, colour_groups), 2)


def make_mask(filter_shape, masktype, colour_groups=1, groups=None):
    """Causal mask for a filter of shape ``(out, in, rows, cols)``, same shape out.

    Ones on the rows above the centre and, on the centre row, left of the
    centre; mask 'b' also keeps the centre tap, mask 'a' drops it::

        rows x cols = 3 x 3     mask 'a'     mask 'b'
                                1 1 1        1 1 1
                                1 0 0        1 1 0
                                0 0 0        0 0 0

    With ``colour_groups`` > 1 the centre tap from input channel i to output
    channel o is kept when ``group(i) < group(o)`` ('a') or ``<=`` ('b'), the
    groups as in :func:`channel_groups`; ``colour_groups=1`` is the above.
    ``groups``: (out groups ``(out,)``, in groups ``(in,)``) int arrays given
    explicitly (e.g. :func:`gated_channel_groups`) instead.
    """
    if masktype not in ("a", "b"):
        raise ValueError("masktype must be None, 'a' or 'b', got {!r}".format(masktype))
    if groups is not None:
        out_groups, in_groups = (numpy.asarray(g) for g in groups)
        if out_groups.shape != filter_shape[:1] or in_groups.shape != filter_shape[1:2]:
            raise ValueError("groups of shapes {} and {} do not fit a filter {}".format(
                out_groups.shape, in_groups.shape, filter_shape))
    else:
        out_groups = channel_groups(filter_shape[0], colour_groups)
        in_groups = channel_groups(filter_shape[1], colour_groups)
    rows, cols = filter_shape[2], filter_shape[3]
    mask = numpy.zeros(filter_shape, dtype=theano.config.floatX)
    mask[:, :, :rows // 2, :] = 1.0
    mask[:, :, rows // 2, :cols // 2] = 1.0
    if masktype == "a":
        centre = out_groups[:, None] > in_groups[None, :]
    else:
        centre = out_groups[:, None] >= in_groups[None, :]
    mask[:, :, rows // 2, cols // 2] = centre
    return mask


def conv_filter(filter_shape, masktype=None, name="", colour_groups=1, groups=None):
    """Glorot-uniform filter ``(out, in, rows, cols)``; returns (shared
    parameter, filter used in the conv).

    std = sqrt(2 / (fan_in + fan_out)), times sqrt(2) when masked (about half
    of the taps are zero). The masked filter is ``parameter * mask``, so the
    masked taps get zero gradient. ``colour_groups``, ``groups`` as in
    :func:`make_mask`.
    """
    if masktype is None and (colour_groups != 1 or groups is not None):
        raise ValueError("colour groups need a masktype ('a' or 'b')")
    fan_in = numpy.prod(filter_shape[1:])
    fan_out = filter_shape[0] * numpy.prod(filter_shape[2:])
    init = uniform(numpy.sqrt(2.0 / (fan_in + fan_out)), filter_shape)
    if masktype is not None:
        init *= floatX(numpy.sqrt(2.0))
    param = theano.shared(init, name=name)
    if masktype is None:
        return param, param
    return param, param * make_mask(filter_shape, masktype, colour_groups, groups)


def bias(length, name=""):
    """Zero-initialised bias vector of shape ``(length,)``."""
    return theano.shared(numpy.zeros(length, dtype=theano.config.floatX), name=name)


class Layer(object):
    """Base class: a name, a list of parameters and a symbolic ``output()``."""

    def __init__(self, name=""):
        self.name = name
        self.params = []

    def get_params(self):
        return self.params

    def output(self):
        raise NotImplementedError


class WrapperLayer(Layer):
    """Wraps a symbolic tensor (any layout) as a parameter-free layer."""

    def __init__(self, X, name=""):
        Layer.__init__(self, name)
        self.X = X

    def output(self):
        return self.X


class Conv2D(Layer):
    """Cross-correlation plus bias, optionally masked and activated.

    input ``(batch, input_channels, height, width)`` ->
    output ``(batch, output_channels, height', width')`` where the output size
    follows Theano's ``border_mode`` ('half', 'valid', 'full' or (pad_rows,
    pad_cols)). ``filter_size`` is an int or a (rows, cols) tuple; parameters
    are ``<name>.filter`` and ``<name>.b``. ``colour_groups`` > 1 or explicit
    ``groups`` (masked filters only) add the colour masks of :func:`make_mask`.
    """

    def __init__(self, input_layer, input_channels, output_channels, filter_size,
                 subsample=(1, 1), border_mode="half", masktype=None, activation=None, name="",
                 colour_groups=1, groups=None):
        Layer.__init__(self, name)
        self.X = input_layer.output()
        self.subsample = subsample
        self.border_mode = border_mode
        self.activation = activation
        if isinstance(filter_size, tuple):
            self.filter_shape = (output_channels, input_channels) + filter_size
        else:
            self.filter_shape = (output_channels, input_channels, filter_size, filter_size)

        self.filter_param, self.filter = conv_filter(self.filter_shape, masktype, name + ".filter",
                                                     colour_groups, groups)
        self.bias = bias((output_channels,), name + ".b")
        self.params = [self.filter_param, self.bias]

        conv_out = T.nnet.conv2d(self.X, self.filter, border_mode=border_mode,
                                 subsample=subsample, filter_flip=False)
        self.Y = apply_activation(conv_out + self.bias[None, :, None, None], activation)

    def output(self):
        return self.Y


class Softmax(Layer):
    """Softmax over the last axis of a tensor of any rank; same shape out."""

    def __init__(self, input_layer, name=""):
        Layer.__init__(self, name)
        self.input_layer = input_layer
        self.X = input_layer.output()
        self.input_shape = self.X.shape

    def output(self):
        flat = self.X.reshape((-1, self.input_shape[self.X.ndim - 1]))
        return T.nnet.softmax(flat).reshape(self.input_shape)
