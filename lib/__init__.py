"""The primitives of the PixelCNN code, named as the original names them.

Importing this package configures Theano first (see ``lib.backend``).

Map:
    backend     Theano flags and the Lasagne 0.1 import shim
    ops         floatX, the original's leaky ReLU, sample_from_softmax
    layers      Layer, WrapperLayer, Conv2D (masks 'a'/'b'), Softmax
    model       Model: collects parameters, prints, saves and loads them
    checkpoint  checkpoint files: atomic .npz writer, allow-listed pickle reader
    training    the clipped-Adam update and the categorical cross-entropy
    skew        the Diagonal BiLSTM's skew/unskew ops (rows shifted right by their index)
"""
from lib import backend  # noqa: F401  (must run before anything imports theano)
from lib.ops import floatX, relu, sample_from_softmax
from lib.layers import Layer, WrapperLayer, Conv2D, Softmax, make_mask
from lib.model import Model
from lib.checkpoint import CheckpointError

__all__ = ["floatX", "relu", "sample_from_softmax", "Layer", "WrapperLayer", "Conv2D",
           "Softmax", "make_mask", "Model", "CheckpointError"]
