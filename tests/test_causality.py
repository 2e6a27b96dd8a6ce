"""Causality and no blind spot, measured with gradients.

For an output pixel (i, j) the set of input pixels with a non-zero gradient must
be exactly the receptive field the architecture promises: nothing at or after
(i, j) in raster order, and every earlier pixel inside that field (no blind spot).
The measured sets are also checked directly for the shape of a field without a
blind spot (:func:`assert_causal_without_blind_spot`), independently of the
``promised_field`` helper.
"""
import numpy
import pytest
import theano.tensor as T

from lib import WrapperLayer, floatX
from models.pixel_conv import pixelConv
from tests.compiling import compile_light


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
    return request.param, compile_light([X, i, j], T.grad(target, X))


def assert_causal_without_blind_spot(deps, i, j):
    """deps (H, W) booleans: the input pixels that output pixel (i, j) depends on.
    Nothing at or after (i, j) in raster order; the rows reached run without a gap
    down to the pixel, each one contiguous run of columns; rows above reach from left
    of the pixel to right of it (clipped at the borders), its own row ends just left
    of it; and below every pixel seen in the rows above is one seen in the next row
    (stacked masked convolutions break this: their blind spot). A check of the
    measured maps that does not rely on ``promised_field``."""
    height, width = deps.shape
    order = numpy.arange(height * width).reshape(height, width)
    assert not deps[order >= i * width + j].any(), (i, j)
    if (i, j) == (0, 0):
        return
    rows = numpy.flatnonzero(deps.any(axis=1))
    assert len(rows) and list(rows) == list(range(rows[0], i + (j > 0))), (i, j)
    for r in rows:
        cols = numpy.flatnonzero(deps[r])
        assert list(cols) == list(range(cols[0], cols[-1] + 1)), (i, j, r)
        if r < i:
            assert cols[0] < j or cols[0] == 0, (i, j, r)
            assert cols[-1] > j or cols[-1] == width - 1, (i, j, r)
        else:
            assert cols[-1] == j - 1, (i, j)
    for r in range(i - 1):
        assert not (deps[r] & ~deps[r + 1]).any(), ("blind spot", i, j, r + 1)


def test_left_border_column_sees_nothing_above_with_two_layers(network):
    """A property of the original graph, kept: mask 'a' of hstack1 also masks the
    vertical stack's channels, so with only two layers column 0 sees no row above
    (nothing at all); from three layers on it sees the rows above."""
    num_layers, grad_fn = network
    for i in range(1, 6):
        column_0, column_1 = (dependency_map(grad_fn, 6, 6, i, j) for j in (0, 1))
        assert column_1[:i].any()
        if num_layers == 2:
            assert not column_0.any(), i
        else:
            assert_causal_without_blind_spot(column_0, i, 0)


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
            if j > 0 or num_layers > 2:  # column 0 of two layers: the border test
                assert_causal_without_blind_spot(depends, i, j)
            # exactly the promised field: nothing missing, nothing extra
            numpy.testing.assert_array_equal(depends, promised, err_msg=str((i, j)))


def test_first_pixel_depends_on_nothing(network):
    num_layers, grad_fn = network
    assert not dependency_map(grad_fn, 6, 6, 0, 0).any()
