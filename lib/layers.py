"""Layers: WrapperLayer, Conv2D with masks 'a' and 'b', and Softmax.

Convolutions work on Theano's layout ``(batch, channels, height, width)``;
filters are ``(out_channels, in_channels, rows, cols)``.  Every layer has a
``name``, a ``params`` list of shared variables and an ``output()`` method.
"""
import numpy
import theano
import theano.tensor as T

from lib.ops import apply_activation, floatX


def uniform(stdev, size, rng=numpy.random):
    """Float32 array of ``size`` drawn uniformly with standard deviation ``stdev``."""
    bound = stdev * numpy.sqrt(3)
    return rng.uniform(low=-bound, high=bound, size=size).astype(theano.config.floatX)


def make_mask(filter_shape, masktype):
    """Causal mask for a filter of shape ``(out, in, rows, cols)``.

    Ones on the rows above the centre and, on the centre row, left of the
    centre; mask 'b' also keeps the centre tap, mask 'a' drops it::

        rows x cols = 3 x 3     mask 'a'     mask 'b'
                                1 1 1        1 1 1
                                1 0 0        1 1 0
                                0 0 0        0 0 0
    """
    if masktype not in ("a", "b"):
        raise ValueError("masktype must be None, 'a' or 'b', got {!r}".format(masktype))
    rows, cols = filter_shape[2], filter_shape[3]
    mask = numpy.zeros(filter_shape, dtype=theano.config.floatX)
    mask[:, :, :rows // 2, :] = 1.0
    mask[:, :, rows // 2, :cols // 2] = 1.0
    if masktype == "b":
        mask[:, :, rows // 2, cols // 2] = 1.0
    return mask


def conv_filter(filter_shape, masktype=None, name=""):
    """Glorot-uniform filter; returns (shared parameter, filter used in the conv).

    std = sqrt(2 / (fan_in + fan_out)), times sqrt(2) when masked (about half
    of the taps are zero). The masked filter is ``parameter * mask``, so the
    masked taps get zero gradient.
    """
    fan_in = numpy.prod(filter_shape[1:])
    fan_out = filter_shape[0] * numpy.prod(filter_shape[2:])
    init = uniform(numpy.sqrt(2.0 / (fan_in + fan_out)), filter_shape)
    if masktype is not None:
        init *= floatX(numpy.sqrt(2.0))
    param = theano.shared(init, name=name)
    if masktype is None:
        return param, param
    return param, param * make_mask(filter_shape, masktype)


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
    are ``<name>.filter`` and ``<name>.b``.
    """

    def __init__(self, input_layer, input_channels, output_channels, filter_size,
                 subsample=(1, 1), border_mode="half", masktype=None, activation=None, name=""):
        Layer.__init__(self, name)
        self.X = input_layer.output()
        self.subsample = subsample
        self.border_mode = border_mode
        self.activation = activation
        if isinstance(filter_size, tuple):
            self.filter_shape = (output_channels, input_channels) + filter_size
        else:
            self.filter_shape = (output_channels, input_channels, filter_size, filter_size)

        self.filter_param, self.filter = conv_filter(self.filter_shape, masktype, name + ".filter")
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
