"""Small numeric helpers shared by the layers and the scripts."""
import numpy
import theano
import theano.tensor as T
from theano.sandbox.rng_mrg import MRG_RandomStreams


def floatX(x):
    """Cast a number or array to float32, the project's compute type."""
    return numpy.asarray(x, dtype=theano.config.floatX)[()]


def relu(x):
    """Leaky ReLU with slope 1e-5 below zero (the original's guard against NaN).

    Any tensor layout; elementwise.
    """
    return T.switch(x > floatX(0.0), x, floatX(0.00001) * x)


def apply_activation(x, activation):
    """Apply ``None``, ``'relu'`` or ``'tanh'`` to a tensor of any layout."""
    if activation is None:
        return x
    if activation == "relu":
        return relu(x)
    if activation == "tanh":
        return T.tanh(x)
    raise ValueError("unknown activation {!r}: use None, 'relu' or 'tanh'".format(activation))


def sample_from_softmax(probs, seed=3732):
    """Symbolic draw from categorical distributions on the last axis.

    probs: (..., num_classes) probabilities; returns int64 indices of shape (...).
    Uses Theano's MRG generator; the scripts sample in numpy instead so that a
    seed gives the same images on every sampler.
    """
    streams = MRG_RandomStreams(seed=seed)
    flat = probs.reshape((-1, probs.shape[probs.ndim - 1]))
    one_hot = T.cast(streams.multinomial(pvals=flat), theano.config.floatX)
    return T.argmax(one_hot.reshape(probs.shape), axis=probs.ndim - 1)
