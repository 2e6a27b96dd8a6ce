"""Convolutions on channels-last maps as single matrix products.

The fast networks keep every activation as a matrix ``(batch * rows * width,
channels)`` (viewed as ``(batch, rows, width, channels)`` where a shape is
needed). A causal convolution is then the product of the patch matrix of
``kernels.patches`` (one row of tap values per output position) with the
filter flattened to ``(out, taps * in + 1 bias column)`` and used transposed;
``kernels.tiled_conv`` computes that product tile by tile without writing the
patch matrix out. A 1x1 convolution is the same with one tap.

A map handed to ``causal_conv`` is a ``Map``: the tensor plus where its image
rows start (``origin``) and how many rows after them are not image
(``trailing``); see ``kernels.patches``.
"""
import collections

import numpy
import theano.tensor as T

from kernels.fast_relu import leaky_relu
from kernels.tiled_conv import tiled_conv
from lib.layers import bias as zero_bias, conv_filter, make_mask
from lib.ops import apply_activation

Map = collections.namedtuple("Map", "tensor origin trailing")


def as_map(tensor, origin=0, trailing=0):
    """A ``(batch, rows, width, channels)`` tensor whose image rows start at ``origin``."""
    return Map(tensor, origin, trailing)


def conv_weights(name, shape, masktype=None, groups=None):
    """``<name>.filter`` and ``<name>.b`` created exactly as ``Conv2D`` creates them
    (same initialiser, same random draws; ``groups`` as in ``lib.layers.make_mask``).
    Returns (filter parameter, filter as used (masked), bias, the taps the mask
    keeps)."""
    param, used = conv_filter(shape, masktype, name + ".filter", groups=groups)
    b = zero_bias((shape[0],), name + ".b")
    return param, used, b, kept_taps(make_mask(shape, masktype, groups=groups) if masktype
                                     else shape)


def kept_taps(mask_or_shape):
    """The ``(row, col)`` taps of a filter that a mask keeps (any nonzero entry), in
    row-major order; ``mask_or_shape`` is a mask ``(out, in, rows, cols)`` or, for an
    unmasked filter, its shape."""
    if isinstance(mask_or_shape, tuple):
        return [(j, k) for j in range(mask_or_shape[2]) for k in range(mask_or_shape[3])]
    used = numpy.asarray(mask_or_shape).any(axis=(0, 1))
    return [(j, k) for j, k in zip(*numpy.nonzero(used))]


def filter_matrix(filt, taps):
    """Filter ``(out, in, rows, cols)`` -> ``(out, len(taps) * in)``: columns in
    (tap, input channel) order."""
    blocks = [filt[:, :, j, k] for j, k in taps]  # each (out, in)
    return T.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]


def causal_conv(maps, filt, bias, taps, offsets, extra_rows=0):
    """Convolution of the channel-wise concatenation of ``maps`` with ``filt``.

    maps: list of ``Map``s ``(batch, rows_i, width, channels_i)``, concatenated
    along channels in this order (``filt`` has ``sum(channels_i)`` inputs);
    filt: ``(out, in, rows, cols)``; taps: the ``(row, col)`` taps to use;
    offsets: ``(dr, dc)`` such that tap ``(j, k)`` reads image position
    ``(r + j + dr, c + k + dc)`` for output ``(r, c)``. Returns the output
    matrix ``(batch * (height + extra_rows) * width, out)``, bias added.
    """
    return conv_sum([(maps, filt, taps, offsets)], [bias], extra_rows)


def conv_sum(terms, biases, extra_rows=0):
    """Sum of several convolutions (and biases) as one product.

    terms: list of ``(maps, filt, taps, offsets)`` as in :func:`causal_conv`;
    a term may also be ``(maps, matrix, None, None)`` with ``matrix`` of shape
    ``(in, out)``, which adds ``maps @ matrix`` at each position (a 1x1
    convolution, or a per-image condition tiled over the positions). Returns
    ``(batch * (height + extra_rows) * width, out)``.
    """
    all_maps, tap_list, weights = [], [], []
    for maps, filt, taps, offsets in terms:
        first = len(all_maps)
        all_maps += [tuple(m) for m in maps]
        if taps is None:
            tap_list += [(first + m, 0, 0) for m in range(len(maps))]
            weights.append(filt.T)
            continue
        dr, dc = offsets
        tap_list += [(first + m, j + dr, k + dc) for j, k in taps for m in range(len(maps))]
        weights.append(filter_matrix(filt, taps))
    total_bias = biases[0]
    for b in biases[1:]:
        total_bias = total_bias + b
    weights.append(total_bias.dimshuffle(0, "x"))
    return tiled_conv(all_maps, tap_list, T.concatenate(weights, axis=1), extra_rows)


def fold_1x1(source, filt_1x1, bias_1x1, filt, taps, offsets, ones):
    """``conv_sum`` terms for the convolution ``filt (out, mid, rows, cols)`` of
    the 1x1 layer ``filt_1x1 (mid, in, 1, 1)`` + ``bias_1x1 (mid,)`` applied to
    the ``Map`` ``source`` ``(batch, rows, width, in)``, without computing that
    layer's output.

    Each tap reads ``source`` through ``filt[:, :, j, k] @ filt_1x1`` instead;
    the 1x1 bias enters through ``ones`` (a ``Map`` of ones ``(batch, height,
    width, 1)``), whose zero padding counts it only where the tap lies inside
    the image, as the zero-padded output of the 1x1 layer would.
    """
    folded = T.tensordot(filt, filt_1x1[:, :, 0, 0], axes=[[1], [0]])  # (out, rows, cols, in)
    through_bias = T.tensordot(filt, bias_1x1, axes=[[1], [0]])         # (out, rows, cols)
    return [([source], folded.dimshuffle(0, 3, 1, 2), taps, offsets),
            ([ones], through_bias.dimshuffle(0, "x", 1, 2), taps, offsets)]


def conv1x1(x, filt, bias):
    """1x1 convolution of a ``(positions, in)`` matrix with ``filt (out, in, 1, 1)``:
    ``(positions, out)``.

    The matrix is handed to ``tiled_conv`` as a map of one image of one column
    ``(1, positions, 1, in)`` with a single tap, which it multiplies in place
    tile by tile, both cores at once (BLAS's own threads split these thin
    products poorly: OpenBLAS ran (78400, 32) x (32, 32) at half BLIS's rate);
    the bias and its gradient come with the product.
    """
    weights = T.concatenate([filt[:, :, 0, 0], bias.dimshuffle(0, "x")], axis=1)
    column = x.reshape((1, x.shape[0], 1, x.shape[1]))
    return tiled_conv([(column, 0, 0)], [(0, 0, 0)], weights)


def activate(x, activation):
    """``lib.ops.apply_activation``, with the leaky ReLU as the branch-free op of
    ``kernels.fast_relu`` (same values and gradients)."""
    return leaky_relu(x) if activation == "relu" else apply_activation(x, activation)


def to_map(matrix, batch, rows, width):
    """``(batch * rows * width, channels)`` -> ``(batch, rows, width, channels)`` (a view)."""
    return matrix.reshape((batch, rows, width, matrix.shape[1]))
