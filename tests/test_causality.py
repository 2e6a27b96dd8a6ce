"""Causality and no blind spot, measured with gradients.

For an output pixel (i, j) the set of input pixels with a non-zero gradient must
be exactly the receptive field the architecture promises: nothing at or after
(i, j) in raster order, and every earlier pixel inside that field (no blind spot).
"""
import numpy
import pytest
import theano
import theano.tensor as T

from lib import WrapperLayer, floatX
from models.pixel_conv import pixelConv


def window(deps, rows, cols):
    """deps (H, W, ...) boolean; out[r, c] = OR of deps[r + dr, c + dc] over the offsets
    inside the image (zero padding contributes nothing)."""
    height, width = deps.shape[:2]
    out = numpy.zeros_like(deps)
    for dr in rows:
        for dc in cols:
            r0, r1 = max(0, -dr), min(height, height - dr)
            c0, c1 = max(0, -dc), min(width, width - dc)
            out[r0:r1, c0:c1] |= deps[r0 + dr:r1 + dr, c0 + dc:c1 + dc]
    return out


def promised_field(num_layers, height, width):
    """deps[r, c] = boolean (height, width) map of the input pixels that output
    pixel (r, c) depends on, propagated through the layer windows of
    models.pixel_conv on image-aligned maps (zero padding contributes nothing)."""
    image = numpy.eye(height * width, dtype=bool).reshape(height, width, height, width)
    above = window(image, range(-4, 0), range(-3, 4))      # vstack1, rows [:H]
    vertical = window(image, range(-3, 1), range(-3, 4))   # vstack1, rows [1:H+1]
    horizontal = window(above | image, [0], range(-3, 0))  # hstack1, mask 'a'
    for _ in range(num_layers - 2):
        above = window(vertical, [-2, -1], range(-1, 2))   # vstack -> v2h, rows [:H]
        horizontal = window(above | horizontal, [0], [-1, 0]) | horizontal  # + residual
        vertical = window(vertical, [-1, 0], range(-1, 2))  # rows [1:H+1]
    return horizontal


def dependency_map(grad_fn, height, width, i, j, seed=0):
    x = floatX(numpy.random.RandomState(seed).rand(2, height, width, 1))
    return grad_fn(x, i, j)[0, :, :, 0] != 0


@pytest.fixture(scope="module", params=[2, 3, 4, 5, 6])
def network(request):
    numpy.random.seed(request.param)
    X = T.tensor4("X")
    layer = pixelConv(WrapperLayer(X), 1, 4, Q_LEVELS=3, num_layers=request.param, name="t")
    for p in layer.params:  # random biases too, so that no unit is exactly inactive
        p.set_value(floatX(numpy.random.uniform(-0.5, 0.5, p.get_value().shape)))
    i, j = T.iscalars("i", "j")
    weights = floatX(numpy.random.RandomState(7).rand(3) + 0.5)
    target = (layer.output()[:, i, j, 0, :] * weights).sum()
    return request.param, theano.function([X, i, j], T.grad(target, X))


def test_promise_is_causal_and_has_no_blind_spot_inside_the_image():
    """Away from the left border every row above is reached contiguously from left
    of the pixel to right of it, and the row itself up to the pixel."""
    height, width, i, j = 12, 16, 8, 8
    for layers in range(2, 7):
        deps = promised_field(layers, height, width)[i, j]
        order = numpy.arange(height * width).reshape(height, width)
        assert not deps[order >= i * width + j].any()
        for r in numpy.flatnonzero(deps.any(axis=1)):
            cols = numpy.flatnonzero(deps[r])
            assert list(cols) == list(range(cols[0], cols[-1] + 1))
            assert cols[0] < j and (cols[-1] > j if r < i else cols[-1] == j - 1)


def test_left_border_column_sees_nothing_above_with_two_layers():
    """A property of the original graph, kept: mask 'a' of hstack1 also masks the
    vertical stack's channels, so with only two layers column 0 sees no row above."""
    deps = promised_field(2, 6, 6)
    assert not deps[3, 0].any() and deps[3, 1].any()
    assert promised_field(3, 6, 6)[3, 0].any()


@pytest.mark.parametrize("height, width", [(8, 8), (7, 11), (12, 5)])
def test_gradient_support_is_exactly_the_promised_field(network, height, width):
    num_layers, grad_fn = network
    field = promised_field(num_layers, height, width)
    for i in range(height):
        for j in range(width):
            depends = dependency_map(grad_fn, height, width, i, j)
            promised = field[i, j]
            # causality: nothing at or after (i, j) in raster order
            later = numpy.arange(height * width).reshape(height, width) >= i * width + j
            assert not (depends & later).any(), (i, j)
            # exactly the promised field: no blind spot, nothing extra
            numpy.testing.assert_array_equal(depends, promised, err_msg=str((i, j)))


def test_first_pixel_depends_on_nothing(network):
    num_layers, grad_fn = network
    assert not dependency_map(grad_fn, 6, 6, 0, 0).any()
