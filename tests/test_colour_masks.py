"""Colour masks: make_mask against an explicit-loop reference, and the gradients of one
colour-masked Conv2D for all nine (output colour, input colour) pairs.

Convention under test: of a tensor with C channels split into G colour groups,
group g holds channels ceil(g * C / G) .. ceil((g + 1) * C / G) - 1 (for the
image, C = G: channel c is colour c, R = 0, G = 1, B = 2).
"""
import math

import numpy
import pytest
import theano.tensor as T

from lib import Conv2D, WrapperLayer, floatX, make_mask
from lib.layers import channel_groups
from tests.compiling import compile_light

R, G, B = 0, 1, 2


def reference_groups(channels, groups):
    """Group of each channel, filled block by block with explicit loops."""
    owner = [None] * channels
    for g in range(groups):
        for c in range(math.ceil(g * channels / groups), math.ceil((g + 1) * channels / groups)):
            owner[c] = g
    return owner


def reference_colour_mask(filter_shape, masktype, groups):
    """Mask ``(out, in, rows, cols)``: taps before the centre (raster order) see every
    colour, taps after it none; at the centre output colour d sees input colour c
    when c < d ('a') or c <= d ('b')."""
    n_out, n_in, rows, cols = filter_shape
    out_group, in_group = reference_groups(n_out, groups), reference_groups(n_in, groups)
    centre = (rows // 2, cols // 2)
    mask = numpy.zeros(filter_shape, dtype="float32")
    for o in range(n_out):
        for i in range(n_in):
            for r in range(rows):
                for c in range(cols):
                    if (r, c) < centre:
                        mask[o, i, r, c] = 1
                    elif (r, c) == centre:
                        d, e = out_group[o], in_group[i]
                        mask[o, i, r, c] = e < d or (masktype == "b" and e == d)
    return mask


def test_channel_groups_are_consecutive_near_equal_blocks():
    assert list(channel_groups(3, 3)) == [R, G, B]
    assert list(channel_groups(6, 3)) == [R, R, G, G, B, B]
    assert list(channel_groups(4, 3)) == [R, R, G, B]
    assert list(channel_groups(8, 3)) == [R, R, R, G, G, G, B, B]
    assert list(channel_groups(12, 3)) == [R] * 4 + [G] * 4 + [B] * 4  # (colour, Q_LEVELS=4)
    for channels in range(3, 40):
        assert list(channel_groups(channels, 3)) == reference_groups(channels, 3)


def test_one_by_one_rgb_masks_by_hand():
    """Rows: output R, G, B; columns: input R, G, B."""
    numpy.testing.assert_array_equal(make_mask((3, 3, 1, 1), "a", 3)[:, :, 0, 0],
                                     [[0, 0, 0],
                                      [1, 0, 0],
                                      [1, 1, 0]])
    numpy.testing.assert_array_equal(make_mask((3, 3, 1, 1), "b", 3)[:, :, 0, 0],
                                     [[1, 0, 0],
                                      [1, 1, 0],
                                      [1, 1, 1]])


@pytest.mark.parametrize("filter_shape", [(3, 3, 7, 7), (6, 3, 3, 3), (8, 6, 3, 3),
                                          (24, 6, 1, 3), (12, 8, 1, 1), (4, 4, 2, 1), (3, 5, 1, 7)])
@pytest.mark.parametrize("masktype", ["a", "b"])
@pytest.mark.parametrize("groups", [1, 2, 3])
def test_colour_masks_match_the_reference(filter_shape, masktype, groups):
    numpy.testing.assert_array_equal(make_mask(filter_shape, masktype, groups),
                                     reference_colour_mask(filter_shape, masktype, groups))


def test_plain_masks_by_hand():
    """Without colour groups (the default): every (out, in) pair gets the same taps."""
    for shape, masktype, taps in [
            ((2, 3, 3, 3), "a", [[1, 1, 1],
                                 [1, 0, 0],
                                 [0, 0, 0]]),
            ((2, 3, 3, 3), "b", [[1, 1, 1],
                                 [1, 1, 0],
                                 [0, 0, 0]]),
            ((4, 2, 1, 3), "a", [[1, 0, 0]]),
            ((4, 2, 1, 3), "b", [[1, 1, 0]]),
            ((5, 5, 1, 1), "a", [[0]]),
            ((5, 5, 1, 1), "b", [[1]])]:
        want = numpy.broadcast_to(numpy.array(taps, dtype="float32"), shape)
        numpy.testing.assert_array_equal(make_mask(shape, masktype), want,
                                         err_msg=str((shape, masktype)))


@pytest.mark.parametrize("filter_shape", [(3, 3, 7, 7), (4, 2, 1, 3), (5, 5, 1, 1), (2, 3, 4, 6)])
@pytest.mark.parametrize("masktype", ["a", "b"])
def test_plain_mask_keeps_the_taps_before_the_centre_in_raster_order(filter_shape, masktype):
    """Tap (r, c) is kept when r * cols + c comes before the centre's index (or is it,
    for 'b'); the same for every channel pair."""
    rows, cols = filter_shape[2:]
    index = numpy.arange(rows * cols).reshape(rows, cols)
    centre = (rows // 2) * cols + cols // 2
    keep = (index < centre) | ((index == centre) & (masktype == "b"))
    numpy.testing.assert_array_equal(make_mask(filter_shape, masktype),
                                     numpy.broadcast_to(keep, filter_shape))


def test_too_few_channels_or_no_mask_is_an_error():
    with pytest.raises(ValueError, match="colour groups"):
        make_mask((2, 3, 3, 3), "a", 3)
    with pytest.raises(ValueError, match="needs? a masktype"):
        Conv2D(WrapperLayer(T.tensor4()), 3, 3, 3, colour_groups=3)


@pytest.fixture(scope="module", params=["a", "b"])
def colour_conv(request):
    """(masktype, layer, f) for a 3x3 conv RGB image -> 6 maps (2 per colour);
    f(x, o, i, j) = d out[0, o, i, j] / d x, x ``(1, 3, 5, 5)``."""
    numpy.random.seed(1)
    X = T.tensor4("X")
    layer = Conv2D(WrapperLayer(X), 3, 6, 3, masktype=request.param, name="c", colour_groups=3)
    o, i, j = T.iscalars("o", "i", "j")
    return request.param, layer, compile_light([X, o, i, j],
                                                 T.grad(layer.output()[0, o, i, j], X))


def test_masked_conv_gradient_is_the_reference_masked_filter(colour_conv):
    """d out[o, i, j] / d x[c, i + r - 1, j + s - 1] = filter[o, c, r, s] * mask, and zero
    outside the 3x3 window."""
    masktype, layer, grad = colour_conv
    x = floatX(numpy.random.RandomState(0).rand(1, 3, 5, 5))
    want = layer.filter_param.get_value() * reference_colour_mask((6, 3, 3, 3), masktype, 3)
    for o in range(6):
        got = grad(x, o, 2, 2)[0]
        numpy.testing.assert_array_equal(got[:, 1:4, 1:4], want[o])
        got[:, 1:4, 1:4] = 0
        assert not got.any()


@pytest.mark.parametrize("out_colour", [R, G, B])
@pytest.mark.parametrize("in_colour", [R, G, B])
def test_nine_colour_pairs_at_the_centre(colour_conv, out_colour, in_colour):
    """G sees R, B sees R and G, R sees neither ('a'); 'b' adds each colour itself.
    Both output maps of a colour, at a corner and in the middle of the image."""
    masktype, _, grad = colour_conv
    x = floatX(numpy.random.RandomState(0).rand(1, 3, 5, 5))
    sees = in_colour < out_colour or (masktype == "b" and in_colour == out_colour)
    for o in (2 * out_colour, 2 * out_colour + 1):
        for i, j in [(0, 0), (2, 3), (4, 4)]:
            g = grad(x, o, i, j)[0]
            assert (g[in_colour, i, j] != 0) == sees, (masktype, o, i, j)
            assert (g[:, i, j + 1:] == 0).all() and (g[:, i + 1:] == 0).all()  # after: nothing
            assert (g[:, max(i - 1, 0):i, max(j - 1, 0):j + 2] != 0).all()     # row above: all
