"""MaskedPixelCNN: the logits against a float64 NumPy computation; causality, its exact
receptive field with the blind spot, and colours, all measured with gradients of the
logits at (i, j) with respect to the input image."""
import numpy
import pytest
import theano.tensor as T

from lib import WrapperLayer, floatX
from models.masked_pixel_cnn import MaskedPixelCNN
from tests.compiling import compile_light
from tests.test_causality import assert_causal_without_blind_spot
from tests.test_colour_masks import reference_colour_mask

HEIGHT = WIDTH = 7
NUM_LAYERS = 2
COLOURS, DIM, Q_LEVELS = 3, 6, 4


def masked_taps(rows, cols, masktype):
    """Offsets (dr, dc) of the taps a rows x cols mask keeps, relative to the centre."""
    return [(r - rows // 2, c - cols // 2) for r in range(rows) for c in range(cols)
            if (r - rows // 2, c - cols // 2) < (0, 0)
            or (masktype == "b" and (r, c) == (rows // 2, cols // 2))]


def spread(deps, taps):
    """deps ``(H, W, H, W)``: deps[r, c] = input pixels map (r, c) depends on. Returns
    the same for a conv with the given taps (zero padding adds nothing)."""
    height, width = deps.shape[:2]
    out = numpy.zeros_like(deps)
    for r in range(height):
        for c in range(width):
            for dr, dc in taps:
                if 0 <= r + dr < height and 0 <= c + dc < width:
                    out[r, c] |= deps[r + dr, c + dc]
    return out


def promised_field(num_layers, height, width):
    """``(H, W, H, W)`` booleans: input pixels reaching the logits at each pixel through
    the 7x7 mask-'a' conv, ``num_layers`` residual 3x3 mask-'b' convs and 1x1 outputs."""
    deps = spread(numpy.eye(height * width, dtype=bool).reshape(height, width, height, width),
                  masked_taps(7, 7, "a"))
    for _ in range(num_layers):
        deps = deps | spread(deps, masked_taps(3, 3, "b"))
    return deps


def numpy_masked_conv(x, weight, bias, masktype, groups):
    """Same-size cross-correlation in float64 with the colour mask of ``groups`` groups
    (tests.test_colour_masks' reference): x ``(batch, in, H, W)``, weight ``(out, in, k,
    k)`` with k odd -> ``(batch, out, H, W)``."""
    weight = weight * reference_colour_mask(weight.shape, masktype, groups)
    k = weight.shape[2]
    height, width = x.shape[2:]
    padded = numpy.pad(numpy.float64(x), ((0, 0), (0, 0), (k // 2, k // 2), (k // 2, k // 2)))
    out = sum(numpy.einsum("bchw,oc->bohw", padded[:, :, r:r + height, c:c + width],
                           weight[:, :, r, c]) for r in range(k) for c in range(k))
    return out + bias[None, :, None, None]


def leaky_relu(x):
    """The original's 'relu': slope 1e-5 below zero."""
    return numpy.where(x > 0, x, 1e-5 * x)


def numpy_model(weights, name, image, q_levels, blocks):
    """Logits ``(batch, H, W, C, Q)`` of a masked model from its weights ``{name: array}``
    and image ``(batch, H, W, C)``: the 7x7 mask-'a' conv ``<name>.first``, then
    X + block(X, "<name>.<suffix>") for each ``(suffix, block)`` of ``blocks``, then the
    head relu, 1x1 'b' ``output1``, relu, 1x1 'b' ``output2``; channel ``d * Q + q`` is
    colour d's logit q."""
    colours = image.shape[3]

    def conv(x, suffix, masktype):
        key = "%s.%s." % (name, suffix)
        return numpy_masked_conv(x, weights[key + "filter"], weights[key + "b"], masktype,
                                 colours)

    X = conv(image.transpose(0, 3, 1, 2), "first", "a")              # (batch, DIM, H, W)
    for suffix, block in blocks:
        X = X + block(X, name + "." + suffix)
    hidden = leaky_relu(conv(leaky_relu(X), "output1", "b"))
    out = conv(hidden, "output2", "b")                               # (batch, C * Q, H, W)
    return out.transpose(0, 2, 3, 1).reshape(image.shape + (q_levels,))


def numpy_residual_block(weights, groups):
    """``block(X, key)`` for :func:`numpy_model`, the masked PixelCNN's: relu, 1x1 'b'
    ``<key>.reduce`` (DIM -> h), relu, 3x3 'b' ``<key>.conv``, relu, 1x1 'b'
    ``<key>.expand`` (h -> DIM)."""
    def conv(x, key, masktype="b"):
        return numpy_masked_conv(x, weights[key + ".filter"], weights[key + ".b"], masktype,
                                 groups)

    def block(X, key):
        a = leaky_relu(conv(leaky_relu(X), key + ".reduce"))
        return conv(leaky_relu(conv(a, key + ".conv")), key + ".expand")
    return block


def earlier(i, j, height=HEIGHT, width=WIDTH):
    """``(H, W)`` booleans: pixels before (i, j) in raster order."""
    return numpy.arange(height * width).reshape(height, width) < i * width + j


def later(i, j, height=HEIGHT, width=WIDTH):
    """``(H, W)`` booleans: pixels after (i, j) in raster order."""
    return numpy.arange(height * width).reshape(height, width) > i * width + j


@pytest.fixture(scope="module")
def model():
    """(layer, f) with f(x, i, j, d) = [d (weighted logits of colour d at (i, j),
    summed over the batch) / d x, logits], x ``(batch, H, W, 3)``."""
    numpy.random.seed(3)
    X = T.tensor4("X")
    layer = MaskedPixelCNN(WrapperLayer(X), COLOURS, DIM, Q_LEVELS, num_layers=NUM_LAYERS,
                           name="m")
    for p in layer.params:  # random biases too, so that no unit is exactly inactive
        p.set_value(floatX(numpy.random.uniform(-0.5, 0.5, p.get_value().shape)))
    i, j, d = T.iscalars("i", "j", "d")
    weights = floatX(numpy.random.RandomState(7).rand(Q_LEVELS) + 0.5)
    target = (layer.output()[:, i, j, d, :] * weights).sum()
    return layer, compile_light([X, i, j, d], [T.grad(target, X), layer.output()])


def test_logits_equal_a_numpy_computation(model):
    """Random weights and biases, a random 5 x 6 RGB image: the logits of every pixel,
    colour and level."""
    layer, grad_and_logits = model
    weights = {p.name: p.get_value().astype("float64") for p in layer.params}
    x = floatX(numpy.random.RandomState(4).rand(2, 5, 6, COLOURS))
    block = numpy_residual_block(weights, COLOURS)
    want = numpy_model(weights, "m", x, Q_LEVELS,
                       [("layer%d" % n, block) for n in range(1, NUM_LAYERS + 1)])
    numpy.testing.assert_allclose(grad_and_logits(x, 0, 0, 0)[1], want, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def dependencies(model):
    """deps[i, j, d] = ``(H, W, 3)`` booleans: input (pixel, colour) with a non-zero
    gradient for colour d's logits at (i, j)."""
    grad_and_logits = model[1]
    x = floatX(numpy.random.RandomState(0).rand(2, HEIGHT, WIDTH, COLOURS))
    return numpy.array([[[(grad_and_logits(x, i, j, d)[0] != 0).any(axis=0)
                          for d in range(COLOURS)]
                         for j in range(WIDTH)] for i in range(HEIGHT)])


def test_output_layout_and_parameter_names(model):
    layer, grad_and_logits = model
    logits = grad_and_logits(floatX(numpy.zeros((2, 5, 4, COLOURS))), 0, 0, 0)[1]
    assert logits.shape == (2, 5, 4, COLOURS, Q_LEVELS)
    blocks = ["layer%d.%s" % (n, part) for n in range(1, NUM_LAYERS + 1)
              for part in ("reduce", "conv", "expand")]
    shapes = {p.name: p.get_value().shape for p in layer.params}
    assert list(shapes) == ["m.%s.%s" % (layer_name, p) for layer_name in
                            ["first"] + blocks + ["output1", "output2"] for p in ["filter", "b"]]
    h = DIM // 2
    assert shapes["m.first.filter"] == (DIM, COLOURS, 7, 7)
    assert shapes["m.layer1.reduce.filter"] == (h, DIM, 1, 1)
    assert shapes["m.layer1.conv.filter"] == (h, h, 3, 3)
    assert shapes["m.layer1.expand.filter"] == (DIM, h, 1, 1)
    assert shapes["m.output2.filter"] == (COLOURS * Q_LEVELS, DIM, 1, 1)


def test_causal_and_exactly_the_propagated_field(dependencies):
    field = promised_field(NUM_LAYERS, HEIGHT, WIDTH)
    for i in range(HEIGHT):
        for j in range(WIDTH):
            for d in range(COLOURS):
                spatial = dependencies[i, j, d].any(axis=2)
                assert not (spatial & later(i, j)).any(), (i, j, d)
                spatial[i, j] = False  # the pixel itself: see the colour test
                numpy.testing.assert_array_equal(spatial, field[i, j], err_msg=str((i, j, d)))
                # every colour of an earlier pixel, or none of them
                deps = dependencies[i, j, d][earlier(i, j)]
                assert (deps.all(axis=1) == deps.any(axis=1)).all()


def test_blind_spot_up_right_of_the_pixel(dependencies):
    """Pixel (3, 0), two 3x3 layers: row 2 is seen up to column 0 + 3, row 1 up to
    column 4, row 0 up to 5 (one more per layer); the rest of those rows, earlier
    pixels all, has zero gradient::

        row 0   . . . . . . #
        row 1   . . . . . # #
        row 2   . . . . # # #
        row 3   x
    """
    blind = numpy.zeros((HEIGHT, WIDTH), dtype=bool)
    blind[2, 4:] = blind[1, 5:] = blind[0, 6:] = True
    for d in range(COLOURS):
        seen = dependencies[3, 0, d].any(axis=2)
        numpy.testing.assert_array_equal(earlier(3, 0) & ~seen, blind)
        with pytest.raises(AssertionError, match="blind spot"):  # the stacks' check sees it
            assert_causal_without_blind_spot(seen & earlier(3, 0), 3, 0)
    assert not promised_field(NUM_LAYERS, HEIGHT, WIDTH)[3, 0][blind].any()


@pytest.mark.parametrize("out_colour", range(COLOURS))
@pytest.mark.parametrize("in_colour", range(COLOURS))
def test_colours_at_the_pixel_itself(dependencies, out_colour, in_colour):
    """Logits of colour d at (i, j) depend on the input colours < d at (i, j) only."""
    for i in range(HEIGHT):
        for j in range(WIDTH):
            assert dependencies[i, j, out_colour, i, j, in_colour] == (in_colour < out_colour)


@pytest.mark.parametrize("kwargs, message", [
    (dict(input_dim=3, DIM=4), "input_dim <= h = DIM/2"),
    (dict(DIM=5), "must be even"),
    (dict(Q_LEVELS=1), "Q_LEVELS"),
    (dict(num_layers=-1), "num_layers"),
])
def test_bad_sizes(kwargs, message):
    args = dict(input_dim=1, DIM=4, Q_LEVELS=4, num_layers=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        MaskedPixelCNN(WrapperLayer(T.tensor4()), name="m", **args)


def test_grey_model_without_hidden_layers():
    """input_dim 1 (plain masks), no 3x3 layers: names, and logits against NumPy."""
    numpy.random.seed(8)
    X = T.tensor4("X")
    layer = MaskedPixelCNN(WrapperLayer(X), 1, 4, 8, num_layers=0, name="g")
    assert [p.name for p in layer.params][::2] == ["g.first.filter", "g.output1.filter",
                                                   "g.output2.filter"]
    for p in layer.params:
        p.set_value(floatX(numpy.random.uniform(-0.5, 0.5, p.get_value().shape)))
    weights = {p.name: p.get_value().astype("float64") for p in layer.params}
    x = floatX(numpy.random.RandomState(5).rand(3, 6, 5, 1))
    logits = compile_light([X], layer.output())(x)
    assert logits.shape == (3, 6, 5, 1, 8)
    numpy.testing.assert_allclose(logits, numpy_model(weights, "g", x, 8, []),
                                  rtol=1e-4, atol=1e-5)
