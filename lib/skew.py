"""Skew and unskew, the Diagonal BiLSTM's change of coordinates, as Theano ops.

``skew`` shifts row i of a ``(batch, channels, height, width)`` map right by i,
so that every diagonal of the image becomes a column; ``unskew`` reads the rows
back::

    a b c          a b c 0 0
    d e f  skew    0 d e f 0
    g h i  ---->   0 0 g h i

Each op's gradient is the other one: skew writes ``x[i, j]`` to ``s[i, i + j]``,
so the gradient with respect to ``x[i, j]`` is the one at ``s[i, i + j]``, which
unskew reads; unskew's gradient puts the gradient of ``x[i, j]`` back at
``s[i, i + j]``, zeros elsewhere, which is skew.

Two small ops rather than a pad/reshape/slice graph: on such graphs Theano's
optimizer rewrites slices of slices for tens of seconds in every compile of a
Diagonal BiLSTM model.
"""
import numpy
import theano
import theano.tensor as T


def _last_axis_free(x):
    """A new variable of x's type whose last axis may have any length."""
    return T.TensorType(x.dtype, x.broadcastable[:3] + (False,))()


class Skew(theano.Op):
    """``(batch, channels, height, width)`` -> ``(batch, channels, height, width +
    height - 1)``, ``out[..., i, i + j] = x[..., i, j]``, zeros elsewhere."""
    __props__ = ()

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        if x.ndim != 4:
            raise TypeError("skew needs a 4-d (batch, channels, height, width) map")
        return theano.Apply(self, [x], [_last_axis_free(x)])

    def perform(self, node, inputs, outputs):
        x, = inputs
        batch, channels, height, width = x.shape
        out = numpy.zeros((batch, channels, height, width + height - 1), dtype=x.dtype)
        for i in range(height):
            out[:, :, i, i:i + width] = x[:, :, i]
        outputs[0][0] = out

    def infer_shape(self, node, shapes):
        batch, channels, height, width = shapes[0]
        return [(batch, channels, height, width + height - 1)]

    def grad(self, inputs, output_grads):
        return [unskew(output_grads[0])]


class Unskew(theano.Op):
    """Inverse of :class:`Skew`: ``(batch, channels, height, skewed_width)`` ->
    ``(batch, channels, height, skewed_width - height + 1)``, ``out[..., i, j] =
    s[..., i, i + j]``."""
    __props__ = ()

    def make_node(self, s):
        s = T.as_tensor_variable(s)
        if s.ndim != 4:
            raise TypeError("unskew needs a 4-d (batch, channels, height, width) map")
        return theano.Apply(self, [s], [_last_axis_free(s)])

    def perform(self, node, inputs, outputs):
        s, = inputs
        batch, channels, height, skewed_width = s.shape
        width = skewed_width - height + 1
        out = numpy.empty((batch, channels, height, width), dtype=s.dtype)
        for i in range(height):
            out[:, :, i] = s[:, :, i, i:i + width]
        outputs[0][0] = out

    def infer_shape(self, node, shapes):
        batch, channels, height, skewed_width = shapes[0]
        return [(batch, channels, height, skewed_width - height + 1)]

    def grad(self, inputs, output_grads):
        return [skew(output_grads[0])]


skew = Skew()
unskew = Unskew()
