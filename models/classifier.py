"""A small MNIST digit classifier, to score samples (``evaluate.py --sample-accuracy``).

It reads the same quantised inputs as the PixelCNNs: ``(batch, 28, 28, 1)``
float32 in [0, 1] (``Q_LEVELS`` grey levels), and returns logits
``(batch, 10)``. Layers (Theano layout inside, ``(batch, channels, H, W)``)::

    conv1  3x3, 1 -> 32, leaky ReLU, 2x2 max-pool     (batch, 32, 14, 14)
    conv2  3x3, 32 -> 64, leaky ReLU, 2x2 max-pool    (batch, 64, 7, 7)
    fc1    3136 -> 128, leaky ReLU
    fc2    128 -> 10 logits

Parameters are named ``classifier.<layer>.filter|W`` and ``.b``.
"""
import numpy
import theano
import theano.tensor as T
from theano.tensor.signal.pool import pool_2d

from lib.layers import Conv2D, Layer, WrapperLayer, bias, uniform
from lib.ops import relu

NAME = "classifier"
NUM_CLASSES = 10


def dense_weights(n_in, n_out, name):
    """Glorot-uniform (n_in, n_out) matrix."""
    return theano.shared(uniform(numpy.sqrt(2.0 / (n_in + n_out)), (n_in, n_out)), name=name)


class Classifier(Layer):
    """(batch, 28, 28, 1) inputs -> (batch, 10) logits; see the module docstring."""

    def __init__(self, input_layer, name=NAME):
        Layer.__init__(self, name)
        x = input_layer.output().dimshuffle(0, 3, 1, 2)            # (batch, 1, 28, 28)
        for i, (n_in, n_out) in enumerate([(1, 32), (32, 64)], start=1):
            conv = Conv2D(WrapperLayer(x), n_in, n_out, 3, border_mode="half",
                          activation="relu", name="%s.conv%d" % (name, i))
            self.params += conv.params
            x = pool_2d(conv.output(), ws=(2, 2), ignore_border=True)
        x = x.flatten(2)                                            # (batch, 3136)
        for i, (n_in, n_out) in enumerate([(64 * 7 * 7, 128), (128, NUM_CLASSES)], start=1):
            W = dense_weights(n_in, n_out, "%s.fc%d.W" % (name, i))
            b = bias((n_out,), "%s.fc%d.b" % (name, i))
            self.params += [W, b]
            x = T.dot(x, W) + b
            if i == 1:
                x = relu(x)
        self.Y = x

    def output(self):
        return self.Y
