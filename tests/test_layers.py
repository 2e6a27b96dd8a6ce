"""lib primitives against plain-numpy reference implementations."""
import numpy
import pytest
import theano
import theano.tensor as T

from lib import Conv2D, Softmax, WrapperLayer, floatX, make_mask, relu


def reference_mask(rows, cols, masktype):
    """Tap (r, c) is kept when it comes before the centre in raster order
    ('b': or is the centre)."""
    centre = (rows // 2, cols // 2)
    keep = numpy.zeros((rows, cols), dtype="float32")
    for r in range(rows):
        for c in range(cols):
            if (r, c) < centre or (masktype == "b" and (r, c) == centre):
                keep[r, c] = 1
    return keep


def reference_conv(x, w, b, pad):
    """Cross-correlation: x (batch, in, H, W), w (out, in, kh, kw), pad (ph, pw)."""
    x = numpy.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    out = numpy.zeros((n, o, h - kh + 1, wd - kw + 1), dtype="float64")
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = numpy.einsum("nchw,ochw->no", x[:, :, i:i + kh, j:j + kw], w)
    return out + b[None, :, None, None]


@pytest.mark.parametrize("rows, cols", [(1, 7), (3, 3), (5, 5), (1, 3), (3, 1), (7, 7)])
@pytest.mark.parametrize("masktype", ["a", "b"])
def test_masks_match_the_raster_order_rule(rows, cols, masktype):
    mask = make_mask((4, 2, rows, cols), masktype)
    assert mask.shape == (4, 2, rows, cols)
    for o in range(4):
        for i in range(2):
            numpy.testing.assert_array_equal(mask[o, i], reference_mask(rows, cols, masktype))


def test_unknown_mask_type():
    with pytest.raises(ValueError, match="masktype"):
        make_mask((1, 1, 3, 3), "c")


CASES = [  # (filter_size, border_mode, masktype, activation)
    ((4, 7), (4, 3), None, None),
    ((1, 7), (0, 3), "a", None),
    ((1, 2), (0, 1), None, "relu"),
    ((2, 3), (2, 1), None, None),
    ((1, 1), "valid", None, "relu"),
    (3, "half", "b", "tanh"),
]


@pytest.mark.parametrize("filter_size, border, masktype, activation", CASES)
def test_conv2d_matches_numpy(filter_size, border, masktype, activation):
    rng = numpy.random.RandomState(0)
    X = T.tensor4("X")
    layer = Conv2D(WrapperLayer(X), 3, 5, filter_size, border_mode=border, masktype=masktype,
                   activation=activation, name="conv")
    assert [p.name for p in layer.params] == ["conv.filter", "conv.b"]
    layer.bias.set_value(floatX(rng.randn(5)))
    x = floatX(rng.randn(2, 3, 6, 7))
    got = theano.function([X], layer.output())(x)

    w = layer.filter_param.get_value().astype("float64")
    kh, kw = w.shape[2:]
    if masktype:
        w = w * reference_mask(kh, kw, masktype)
    pad = {"valid": (0, 0), "half": (kh // 2, kw // 2)}.get(border, border)
    want = reference_conv(x.astype("float64"), w, layer.bias.get_value(), pad)
    if activation == "relu":
        want = numpy.where(want > 0, want, 1e-5 * want)
    elif activation == "tanh":
        want = numpy.tanh(want)
    assert got.shape == want.shape
    numpy.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_conv2d_initialisation_scale_and_masked_gradient():
    numpy.random.seed(0)
    X = T.tensor4("X")
    plain = Conv2D(WrapperLayer(X), 64, 64, (3, 3), name="p")
    masked = Conv2D(WrapperLayer(X), 64, 64, (3, 3), masktype="a", name="m")
    std = numpy.sqrt(2.0 / (64 * 9 + 64 * 9))
    assert abs(plain.filter_param.get_value().std() / std - 1) < 0.05
    assert abs(masked.filter_param.get_value().std() / (std * numpy.sqrt(2)) - 1) < 0.05
    assert not plain.bias.get_value().any()
    grad = theano.function([X], T.grad(masked.output().sum(), masked.filter_param))(
        floatX(numpy.random.randn(1, 64, 5, 5)))
    assert (grad[:, :, 1, 1:] == 0).all() and (grad[:, :, 2] == 0).all()  # masked taps
    assert (grad[:, :, 0] != 0).all() and (grad[:, :, 1, 0] != 0).all()


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 5), (2, 4, 4, 1, 4)])
def test_softmax_over_last_axis(shape):
    x = floatX(numpy.random.RandomState(1).randn(*shape) * 3)
    X = T.TensorType("float32", (False,) * len(shape))("X")
    got = theano.function([X], Softmax(WrapperLayer(X)).output())(x)
    e = numpy.exp(x - x.max(axis=-1, keepdims=True))
    numpy.testing.assert_allclose(got, e / e.sum(axis=-1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_relu_is_the_originals_leaky_version():
    x = T.vector("x")
    f = theano.function([x], [relu(x), T.grad(relu(x).sum(), x)])
    values, grads = f(floatX([-2.0, 0.0, 3.0]))
    numpy.testing.assert_allclose(values, [-2e-5, 0.0, 3.0], rtol=1e-6)
    numpy.testing.assert_allclose(grads, [1e-5, 1e-5, 1.0], rtol=1e-6)
