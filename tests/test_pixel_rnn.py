"""PixelRNN: skew/unskew, the LSTM layers and the whole models' logits against
plain-numpy loops, and the models' receptive fields and colours measured with
gradients of the logits at (i, j) with respect to the input image. One compiled
function per model (module-scoped) serves all of them."""
import numpy
import pytest
import theano
import theano.tensor as T

from lib import WrapperLayer, floatX
from models.pixel_rnn import DiagonalBiLSTMPixelRNN, RowLSTMPixelRNN, skew, unskew
from tests.compiling import LIGHT_MODE, compile_light
from tests.test_colour_masks import reference_colour_mask
from tests.test_masked_pixel_cnn import (numpy_masked_conv, numpy_model, numpy_residual_block,
                                        spread)

COLOURS, DIM, Q_LEVELS = 3, 6, 4


# ---------------------------------------------------------------- skew and unskew

@pytest.fixture(scope="module")
def skew_functions():
    X = T.tensor4("X")
    return compile_light([X], skew(X)), compile_light([X], unskew(skew(X)))


def reference_skew(x):
    """``(batch, channels, H, W)`` -> ``(batch, channels, H, W + H - 1)``, row i moved
    right by i."""
    batch, channels, height, width = x.shape
    out = numpy.zeros((batch, channels, height, width + height - 1), dtype=x.dtype)
    for i in range(height):
        for j in range(width):
            out[:, :, i, i + j] = x[:, :, i, j]
    return out


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 1, 5, 2), (1, 2, 1, 4), (1, 1, 3, 1)])
def test_skew_moves_row_i_right_by_i_and_unskew_undoes_it(skew_functions, shape):
    skewed, round_trip = skew_functions
    x = floatX(numpy.random.RandomState(0).rand(*shape) + 1)
    numpy.testing.assert_array_equal(skewed(x), reference_skew(x))
    numpy.testing.assert_array_equal(round_trip(x), x)


@pytest.mark.parametrize("op", [skew, unskew])
def test_skew_and_unskew_gradients_match_finite_differences(op):
    x = numpy.random.RandomState(1).rand(2, 3, 4, 5)  # unskew reads it as width 5 - 4 + 1
    theano.gradient.verify_grad(op, [x], rng=numpy.random.RandomState(2), mode=LIGHT_MODE)


# ---------------------------------------------------------------- LSTM layers vs numpy

def sigmoid(x):
    return 1 / (1 + numpy.exp(-x))


def lstm_update(gates, c_prev):
    """gates ``(batch, 4 * D)``, unit k's gates at 4k .. 4k + 3 in the order input,
    forget, output, candidate; c_prev ``(batch, D)``. Returns (h, c)."""
    g = gates.reshape(gates.shape[0], -1, 4)
    c = sigmoid(g[:, :, 1]) * c_prev + sigmoid(g[:, :, 0]) * numpy.tanh(g[:, :, 3])
    return sigmoid(g[:, :, 2]) * numpy.tanh(c), c


def numpy_row_lstm(x, w_in, b, w_state):
    """x ``(batch, C, H, W)``, w_in ``(4D, C, 1, 3)``, b ``(4D,)``, w_state ``(4D, D, 1, 3)``
    -> h ``(batch, D, H, W)``. Taps (0, -1), (0, 0) of the input (mask 'b'), taps
    (-1, -1 .. 1) of the hidden state; zero states outside the image."""
    batch, _, height, width = x.shape
    h = numpy.zeros((batch, w_state.shape[1], height, width))
    c = numpy.zeros_like(h)
    for i in range(height):
        for j in range(width):
            gates = numpy.tile(b, (batch, 1))
            for k, dj in enumerate((-1, 0, 1)):
                if not 0 <= j + dj < width:
                    continue
                if dj <= 0:
                    gates += x[:, :, i, j + dj] @ w_in[:, :, 0, k].T
                if i > 0:
                    gates += h[:, :, i - 1, j + dj] @ w_state[:, :, 0, k].T
            c_prev = c[:, :, i - 1, j] if i > 0 else 0
            h[:, :, i, j], c[:, :, i, j] = lstm_update(gates, c_prev)
    return h


def numpy_diagonal_lstm(x, w_in, b, w_state):
    """x ``(batch, C, H, W)``, w_in ``(4D, C, 1, 1)``, b ``(4D,)``, w_state ``(4D, D, 2,
    1)`` -> h ``(batch, D, H, W)``: state (i, j) from input (i, j), states (i-1, j)
    (filter row 0) and (i, j-1) (row 1), cell (i, j-1); zero outside the image."""
    batch, _, height, width = x.shape
    h = numpy.zeros((batch, w_state.shape[1], height, width))
    c = numpy.zeros_like(h)
    for i in range(height):
        for j in range(width):
            gates = b + x[:, :, i, j] @ w_in[:, :, 0, 0].T
            c_prev = 0
            if i > 0:
                gates = gates + h[:, :, i - 1, j] @ w_state[:, :, 0, 0].T
            if j > 0:
                gates = gates + h[:, :, i, j - 1] @ w_state[:, :, 1, 0].T
                c_prev = c[:, :, i, j - 1]
            h[:, :, i, j], c[:, :, i, j] = lstm_update(gates, c_prev)
    return h


def randomise(params, seed):
    """Uniform(-0.5, 0.5) values in every parameter, biases too."""
    rng = numpy.random.RandomState(seed)
    for p in params:
        p.set_value(floatX(rng.uniform(-0.5, 0.5, p.get_value().shape)))


def numpy_lstm(weights, kind, groups):
    """``lstm(X, key)`` -> states ``(batch, h, H, W)`` of the LSTM layer ``key`` on X
    ``(batch, DIM, H, W)``: the NumPy loops above, the input-to-state filters with the
    colour masks of ``groups`` groups."""
    def weight(key):  # (masked w_in, b, w_state) of one direction
        w = weights[key + ".input_to_state.filter"]
        return (w * reference_colour_mask(w.shape, "b", groups),
                weights[key + ".input_to_state.b"], weights[key + ".state_to_state.filter"])

    def lstm(X, key):
        if kind == "rowlstm":
            return numpy_row_lstm(X, *weight(key))
        left = numpy_diagonal_lstm(X, *weight(key + ".l2r"))
        right = numpy_diagonal_lstm(X[:, :, :, ::-1], *weight(key + ".r2l"))[:, :, :, ::-1]
        left[:, :, 1:] += right[:, :, :-1]
        return left
    return lstm


def numpy_recurrent_block(weights, kind, groups):
    """``block(X, key)`` for tests.test_masked_pixel_cnn.numpy_model: the LSTM layer
    ``key`` (h units), then the 1x1 mask-'b' conv ``<key>.expand`` back to DIM maps."""
    lstm = numpy_lstm(weights, kind, groups)
    return lambda X, key: numpy_masked_conv(lstm(X, key), weights[key + ".expand.filter"],
                                            weights[key + ".expand.b"], "b", groups)


def numpy_logits(kind, weights, name, image, q_levels, num_layers):
    """Logits ``(batch, H, W, C, Q)`` of a 'masked', 'rowlstm' or 'diagbilstm' model
    (models.build's names) with ``num_layers`` residual blocks, from its weights
    ``{name: array}`` and image ``(batch, H, W, C)``, in float64 NumPy."""
    groups = image.shape[3]
    if kind == "masked":
        suffix, block = "layer%d", numpy_residual_block(weights, groups)
    else:
        suffix, block = kind + "%d", numpy_recurrent_block(weights, kind, groups)
    blocks = [(suffix % n, block) for n in range(1, num_layers + 1)]
    return numpy_model(weights, name, numpy.float64(image), q_levels, blocks)


# ---------------------------------------------------------------- the models, compiled once

ROW_LAYERS, DIAGONAL_LAYERS = 2, 1


def gradient_function(model_class, num_layers, seed):
    """(layer, f) with f(x, i, j, d) = [d (weighted logits of colour d at (i, j), summed
    over the batch) / d x, logits, the input of each LSTM layer, its output...], x
    ``(batch, H, W, 3)``, maps ``(batch, DIM, H, W)``: one compilation serves the
    gradient, value and layer tests."""
    numpy.random.seed(seed)
    X = T.tensor4("X")
    layer = model_class(WrapperLayer(X), COLOURS, DIM, Q_LEVELS, num_layers=num_layers,
                        name="m")
    randomise(layer.params, seed)
    i, j, d = T.iscalars("i", "j", "d")
    weights = floatX(numpy.random.RandomState(7).rand(Q_LEVELS) + 0.5)
    target = (layer.output()[:, i, j, d, :] * weights).sum()
    lstms = [layer.layers["%s%d" % (layer.kind, n)].output() for n in range(1, num_layers + 1)]
    return layer, compile_light([X, i, j, d], [T.grad(target, X), layer.output()] +
                                  layer.hidden_maps[:-1] + lstms)


@pytest.fixture(scope="module")
def row_model():
    return gradient_function(RowLSTMPixelRNN, ROW_LAYERS, 5)


@pytest.fixture(scope="module")
def diagonal_model():
    return gradient_function(DiagonalBiLSTMPixelRNN, DIAGONAL_LAYERS, 6)


@pytest.mark.parametrize("model", ["row_model", "diagonal_model"])
def test_lstm_layers_equal_numpy_loops(request, model):
    """Each LSTM layer of the RGB models, from its input in the network: the Row LSTM
    against the row loop; the Diagonal BiLSTM as the left-to-right states plus the
    right-to-left ones (on the mirrored input, mirrored back) shifted down one row. The
    input-to-state filters carry their colour masks."""
    layer, f = request.getfixturevalue(model)
    weights = {p.name: p.get_value().astype("float64") for p in layer.params}
    x = floatX(numpy.random.RandomState(1).rand(2, 4, 5, COLOURS))
    maps = f(x, 0, 0, 0)[2:]
    num_layers = len(maps) // 2
    lstm = numpy_lstm(weights, layer.kind, COLOURS)
    for n, (inputs, got) in enumerate(zip(maps[:num_layers], maps[num_layers:]), 1):
        want = lstm(numpy.float64(inputs), "m.%s%d" % (layer.kind, n))
        numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=str(n))


# ---------------------------------------------------------------- receptive fields

def masked_field(deps, taps_before, masktype):
    """deps ``(H, W, 3, H, W, 3)``: deps[r, c, g] = input (pixel, colour) pairs that
    colour group g of a map at (r, c) depends on. Returns the same for a masked conv
    of that map: every group at the taps before the centre; at the centre, groups
    < g ('a') or <= g ('b')."""
    out = spread(deps.any(axis=2, keepdims=True), taps_before) | numpy.zeros_like(deps)
    for g in range(COLOURS):
        for h in range(COLOURS):
            if h < g or (masktype == "b" and h == g):
                out[:, :, g] |= deps[:, :, h]
    return out


def first_layer_field(height, width):
    """7x7 mask 'a' on the image (colour c = group c): rows -3 .. -1 at columns -3 .. 3,
    and row 0 at columns -3 .. -1."""
    taps = [(dr, dc) for dr in range(-3, 1) for dc in range(-3, 4) if (dr, dc) < (0, 0)]
    size = height * width * COLOURS
    image = numpy.eye(size, dtype=bool).reshape((height, width, COLOURS) * 2)
    return masked_field(image, taps, "a")


def row_lstm_field(deps):
    """Row LSTM: gates from a 1x3 mask-'b' conv (taps (0, -1) and the centre), plus all
    groups of the states at (-1, -1 .. 1), row after row."""
    states = masked_field(deps, [(0, -1)], "b")
    for r in range(1, deps.shape[0]):
        states[r] |= spread(states.any(axis=2, keepdims=True), [(-1, -1), (-1, 0), (-1, 1)])[r]
    return states


def diagonal_bilstm_field(deps):
    """Diagonal BiLSTM: gates from a 1x1 mask-'b' conv; the left-to-right state (r, c)
    also reads all groups of states (r-1, c), (r, c-1), the right-to-left one (r-1, c),
    (r, c+1); the latter is then shifted down one row."""
    height, width = deps.shape[:2]
    left = masked_field(deps, [], "b")
    right = left.copy()
    for r in range(height):
        for c in range(width):  # left to right; any(axis=0): every group of a state
            if r > 0:
                left[r, c] |= left[r - 1, c].any(axis=0)
            if c > 0:
                left[r, c] |= left[r, c - 1].any(axis=0)
        for c in reversed(range(width)):
            if r > 0:
                right[r, c] |= right[r - 1, c].any(axis=0)
            if c < width - 1:
                right[r, c] |= right[r, c + 1].any(axis=0)
    out = left.copy()
    out[1:] |= right[:-1]
    return out


def promised_field(layer_field, num_layers, height, width):
    """``(H, W, 3, H, W, 3)``: the logits of colour d at (i, j) depend on input (pixel,
    colour) pairs [i, j, d]. First layer, num_layers residual recurrent layers, two 1x1
    mask-'b' output layers."""
    deps = first_layer_field(height, width)
    for _ in range(num_layers):
        deps = deps | layer_field(deps)
    return masked_field(masked_field(deps, [], "b"), [], "b")


def earlier(i, j, height, width):
    """``(H, W)`` booleans: pixels before (i, j) in raster order."""
    return numpy.arange(height * width).reshape(height, width) < i * width + j


def later(i, j, height, width):
    """``(H, W)`` booleans: pixels after (i, j) in raster order."""
    return numpy.arange(height * width).reshape(height, width) > i * width + j


def dependency_maps(grad_and_logits, height, width):
    """deps[i, j, d] = ``(H, W, 3)`` booleans: input (pixel, colour) with a non-zero
    gradient for colour d's logits at (i, j), on two random images."""
    x = floatX(numpy.random.RandomState(0).rand(2, height, width, COLOURS))
    return numpy.array([[[(grad_and_logits(x, i, j, d)[0] != 0).any(axis=0)
                          for d in range(COLOURS)]
                         for j in range(width)] for i in range(height)])


def check_field(deps, field):
    """Causal (nothing after (i, j); at (i, j) colour d sees exactly the colours < d)
    and exactly the propagated ``field`` ``(H, W, 3, H, W, 3)``."""
    height, width = field.shape[:2]
    for i in range(height):
        for j in range(width):
            for d in range(COLOURS):
                assert not deps[i, j, d][later(i, j, height, width)].any(), (i, j, d)
                assert list(deps[i, j, d, i, j]) == [c < d for c in range(COLOURS)], (i, j, d)
                numpy.testing.assert_array_equal(deps[i, j, d], field[i, j, d],
                                                 err_msg=str((i, j, d)))


@pytest.fixture(scope="module")
def row_dependencies(row_model):
    return dependency_maps(row_model[1], 7, 7)


def test_row_lstm_field_is_exactly_the_triangle(row_dependencies):
    check_field(row_dependencies, promised_field(row_lstm_field, ROW_LAYERS, 7, 7))


def test_row_lstm_triangle_misses_earlier_pixels_up_right(row_dependencies):
    """Pixel (5, 0): the states reach one column further right per row up, the 7x7
    first layer 3 columns beyond them, so row 5 - m is seen up to column m + 2; the
    rest of rows 2 .. 4 (every colour) is never seen::

        row 1   . . . . . . .
        row 2   . . . . . . #
        row 3   . . . . . # #
        row 4   . . . . # # #
        row 5   x
    """
    deps = row_dependencies
    unseen = numpy.zeros((7, 7), dtype=bool)
    unseen[4, 4:] = unseen[3, 5:] = unseen[2, 6:] = True
    for d in range(COLOURS):
        for c in range(COLOURS):
            numpy.testing.assert_array_equal(earlier(5, 0, 7, 7) & ~deps[5, 0, d, :, :, c],
                                             unseen)


@pytest.mark.parametrize("height, width", [(6, 4), (5, 3), (4, 1)])
def test_diagonal_bilstm_sees_every_earlier_pixel_when_narrow(diagonal_model, height, width):
    deps = dependency_maps(diagonal_model[1], height, width)
    every = numpy.array([[[earlier(i, j, height, width)[:, :, None].repeat(COLOURS, axis=2)
                           for _ in range(COLOURS)] for j in range(width)]
                         for i in range(height)])
    for i in range(height):
        for j in range(width):
            every[i, j, :, i, j] = numpy.tri(COLOURS, k=-1, dtype=bool)  # colours < d
    numpy.testing.assert_array_equal(
        promised_field(diagonal_bilstm_field, DIAGONAL_LAYERS, height, width), every)
    check_field(deps, every)


def test_diagonal_bilstm_misses_only_the_end_of_the_row_above_when_wide(diagonal_model):
    """Width 6: pixel (i, j) with j < 2 misses the last colour (B) of (i-1, 5). Only
    first-layer features at (i-1, 5) (which see its R and G) or in row i within 3
    columns of it can carry it, and the latter are right of (i, j)."""
    deps = dependency_maps(diagonal_model[1], 6, 6)
    check_field(deps, promised_field(diagonal_bilstm_field, DIAGONAL_LAYERS, 6, 6))
    for i in range(6):
        for j in range(6):
            for d in range(COLOURS):
                unseen = earlier(i, j, 6, 6)[:, :, None] & ~deps[i, j, d]
                gap = [(i - 1, 5, COLOURS - 1)] if i > 0 and j < 2 else []
                assert list(zip(*numpy.nonzero(unseen))) == gap, (i, j, d)


# ---------------------------------------------------------------- layouts and names

@pytest.mark.parametrize("model_class, kind", [(RowLSTMPixelRNN, "rowlstm"),
                                               (DiagonalBiLSTMPixelRNN, "diagbilstm")])
def test_parameter_names_and_output_layout(model_class, kind):
    """DIM 4: LSTMs of h = 2 units between the 4-map residual stream and its 1x1
    expansions."""
    layer = model_class(WrapperLayer(T.tensor4()), 1, 4, 8, num_layers=2, name="p")
    shapes = {p.name: p.get_value().shape for p in layer.params}
    directions = [""] if kind == "rowlstm" else [".l2r", ".r2l"]
    blocks = [["p.%s%d%s.%s" % (kind, n, direction, param) for direction in directions
               for param in ("input_to_state.filter", "input_to_state.b",
                             "state_to_state.filter")] +
              ["p.%s%d.expand.filter" % (kind, n), "p.%s%d.expand.b" % (kind, n)]
              for n in (1, 2)]
    assert list(shapes) == ["p.first.filter", "p.first.b"] + blocks[0] + blocks[1] + [
        "p.output1.filter", "p.output1.b", "p.output2.filter", "p.output2.b"]
    assert len(shapes) == len(layer.params)  # no name twice
    lstm = "p.%s1%s." % (kind, directions[0])
    assert shapes[lstm + "input_to_state.filter"][:2] == (4 * 2, 4)  # 4 gates x h, DIM
    assert shapes[lstm + "state_to_state.filter"][:2] == (4 * 2, 2)
    assert shapes["p.%s1.expand.filter" % kind] == (4, 2, 1, 1)
    assert layer.output().ndim == 5


@pytest.mark.parametrize("kind, model", [("rowlstm", "row_model"),
                                         ("diagbilstm", "diagonal_model")])
def test_logits_equal_a_numpy_computation(request, kind, model):
    """The whole RGB model (first layer, residual LSTM layers, output layers) on a random
    5 x 6 image against float64 NumPy, every pixel, colour and level."""
    layer, grad_and_logits = request.getfixturevalue(model)
    weights = {p.name: p.get_value().astype("float64") for p in layer.params}
    x = floatX(numpy.random.RandomState(2).rand(2, 5, 6, COLOURS))
    num_layers = ROW_LAYERS if kind == "rowlstm" else DIAGONAL_LAYERS
    logits = grad_and_logits(x, 0, 0, 0)[1]
    assert logits.shape == (2, 5, 6, COLOURS, Q_LEVELS)
    numpy.testing.assert_allclose(logits, numpy_logits(kind, weights, "m", x, Q_LEVELS,
                                                       num_layers), rtol=1e-4, atol=1e-5)


def test_hidden_units_must_split_into_colours():
    with pytest.raises(ValueError, match="multiple of input_dim"):
        RowLSTMPixelRNN(WrapperLayer(T.tensor4()), 3, 8, 8)  # h = 4 units, 3 colours
