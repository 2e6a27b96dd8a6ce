"""The fast channels-last graphs against the faithful ones, and their causality.

``models.fast_pixel_conv.FastPixelConv`` and
``models.fast_gated_pixel_cnn.FastGatedPixelCNN`` must be the same models as
``pixelConv`` and ``GatedPixelCNN``: same parameters (names, shapes, order,
initial values), and to float32 rounding the same logits, cost, gradients and
parameters after one clipped Adam step, on the recorded fixtures and on random
configurations.
"""
import numpy
import pytest
import theano
import theano.tensor as T

from conftest import build_as_original
from lib import WrapperLayer, floatX
from lib.training import clipped_adam, nll_per_subpixel
from models.fast_gated_pixel_cnn import FastGatedPixelCNN
from models.fast_pixel_conv import FastPixelConv
from models.gated_pixel_cnn import GatedPixelCNN
from models.pixel_conv import pixelConv
from tests.compiling import compile_light
from test_causality import (assert_causal_without_blind_spot, dependency_map,
                            promised_field)

RTOL, ATOL = 1e-4, 1e-6  # the fixtures README's tolerances


def twin_step(faithful, fast, X, X_r, H=None):
    """For both networks the logits, cost and gradients, applying one clipped Adam step
    to each. The fast network is compiled as training compiles it; the faithful one,
    only the reference here, with the light optimizer (tests.compiling; test_regression
    checks it as the scripts compile it)."""
    inputs = [X, X_r] + ([H] if H is not None else [])
    steps = []
    for layer, compile_ in ((faithful, compile_light), (fast, theano.function)):
        cost = nll_per_subpixel(layer.output(), X_r)
        step, _ = clipped_adam(cost, layer.params, 1e-3, 1.0)
        outputs = [layer.output(), cost] + T.grad(cost, layer.params)
        steps.append(compile_(inputs, outputs, updates=list(step.items())))
    return lambda *args: steps[0](*args) + steps[1](*args)


def assert_twins_agree(faithful, fast, fn, args):
    """Same parameters; then same outputs, gradients and Adam step on random weights."""
    assert [p.name for p in fast.params] == [p.name for p in faithful.params]
    for p, q in zip(faithful.params, fast.params):
        numpy.testing.assert_array_equal(q.get_value(), p.get_value(), err_msg=p.name)
    rng = numpy.random.RandomState(3)
    for p, q in zip(faithful.params, fast.params):  # random biases too
        value = floatX(rng.uniform(-0.5, 0.5, p.get_value().shape))
        p.set_value(value)
        q.set_value(value)
    out = fn(*args)
    n = len(faithful.params)
    ref, ours = out[:2 + n], out[2 + n:]
    numpy.testing.assert_allclose(ours[0], ref[0], rtol=RTOL, atol=ATOL * 10)
    numpy.testing.assert_allclose(ours[1], ref[1], rtol=RTOL)
    for p, g_ref, g in zip(faithful.params, ref[2:], ours[2:]):
        scale = numpy.abs(g_ref).max()
        numpy.testing.assert_allclose(g, g_ref, rtol=RTOL, atol=ATOL + 1e-5 * scale,
                                      err_msg=p.name)
    for p, q in zip(faithful.params, fast.params):
        numpy.testing.assert_allclose(q.get_value(), p.get_value(), rtol=0, atol=ATOL,
                                      err_msg=p.name)


def random_batch(batch, height, width, input_dim, q_levels, seed=0):
    rng = numpy.random.RandomState(seed)
    targets = rng.randint(0, q_levels, (batch, height, width, input_dim)).astype("int32")
    return floatX(targets / float(q_levels - 1)), targets


# ----- pixelConv ----------------------------------------------------------------------

@pytest.mark.parametrize("num_layers, height, width, q_levels, input_dim", [
    (2, 7, 11, 2, 1),
    (3, 5, 9, 16, 3),
    (4, 28, 28, 4, 1),  # two blocks chained, at MNIST's size
])
def test_fast_pixel_conv_equals_pixel_conv(num_layers, height, width, q_levels, input_dim):
    X, X_r = T.tensor4("X"), T.itensor4("X_r")
    layers = []
    for cls in (pixelConv, FastPixelConv):
        numpy.random.seed(11)
        layers.append(cls(WrapperLayer(X), input_dim, 6, Q_LEVELS=q_levels,
                          num_layers=num_layers, name="t"))
    fn = twin_step(*layers, X, X_r)
    assert_twins_agree(*layers, fn, random_batch(2, height, width, input_dim, q_levels))


def test_fast_pixel_conv_reproduces_the_recorded_outputs(small_fixture):
    """The recorded fixture of the original code, through the fast graph."""
    recorded, arrays = small_fixture
    c = recorded["config"]
    model, _, X, X_r, _, _ = build_as_original(c["DIM"], c["num_layers"], c["Q_LEVELS"])
    fast = FastPixelConv(WrapperLayer(X.dimshuffle(0, 1, 2, "x")), 1, c["DIM"],
                         Q_LEVELS=c["Q_LEVELS"], num_layers=c["num_layers"],
                         name=model.name + ".pxCNN")
    for p in fast.params:
        p.set_value(arrays["param/" + p.name])
    cost = nll_per_subpixel(fast.output(), X_r.dimshuffle(0, 1, 2, "x"))
    updates, _ = clipped_adam(cost, fast.params, 1e-3, 1.0)
    probs = T.nnet.softmax(fast.output().reshape((-1, c["Q_LEVELS"])))
    out = theano.function([X, X_r], [probs, cost] + T.grad(cost, fast.params),
                          updates=updates)(arrays["X"], arrays["X_r"])
    numpy.testing.assert_allclose(out[0], arrays["probs"].reshape(out[0].shape),
                                  rtol=RTOL, atol=ATOL)
    numpy.testing.assert_allclose(out[1], arrays["cost"], rtol=RTOL, atol=ATOL)
    for p, g in zip(fast.params, out[2:]):
        numpy.testing.assert_allclose(g, arrays["grad/" + p.name], rtol=RTOL, atol=ATOL,
                                      err_msg=p.name)
        numpy.testing.assert_allclose(p.get_value(), arrays["adam_step1/" + p.name], rtol=0,
                                      atol=ATOL, err_msg=p.name)


# ----- gated --------------------------------------------------------------------------

@pytest.mark.parametrize("num_layers, height, width, q_levels, input_dim, condition_dim, "
                         "condition_map", [
                             (2, 6, 6, 2, 1, 0, None),
                             (4, 7, 11, 4, 1, 10, (9, 12, 3)),  # the map's corner is used
                             (3, 5, 9, 8, 3, 4, None),
                         ])
def test_fast_gated_equals_gated(num_layers, height, width, q_levels, input_dim,
                                 condition_dim, condition_map):
    X, X_r = T.tensor4("X"), T.itensor4("X_r")
    H = T.matrix("H") if condition_dim else None
    layers = []
    for cls in (GatedPixelCNN, FastGatedPixelCNN):
        numpy.random.seed(12)
        layers.append(cls(WrapperLayer(X), input_dim, 5, q_levels, num_layers=num_layers,
                          condition=H, condition_dim=condition_dim, name="g",
                          condition_map=condition_map))
    fn = twin_step(*layers, X, X_r, H)
    args = list(random_batch(3, height, width, input_dim, q_levels))
    if condition_dim:
        args.append(floatX(numpy.random.RandomState(5).randn(3, condition_dim)))
    assert_twins_agree(*layers, fn, args)


# ----- causality and no blind spot ----------------------------------------------------

@pytest.fixture(scope="module", params=[2, 3, 5])
def fast_network(request):
    numpy.random.seed(request.param)
    X = T.tensor4("X")
    layer = FastPixelConv(WrapperLayer(X), 1, 4, Q_LEVELS=3, num_layers=request.param,
                          name="t")
    for p in layer.params:
        p.set_value(floatX(numpy.random.uniform(-0.5, 0.5, p.get_value().shape)))
    i, j = T.iscalars("i", "j")
    weights = floatX(numpy.random.RandomState(7).rand(3) + 0.5)
    target = (layer.output()[:, i, j, 0, :] * weights).sum()
    return request.param, theano.function([X, i, j], T.grad(target, X))


@pytest.mark.parametrize("height, width", [(8, 8), (7, 11)])
def test_fast_gradient_support_is_exactly_the_promised_field(fast_network, height, width):
    num_layers, grad_fn = fast_network
    field = promised_field(num_layers, height, width)
    later = numpy.arange(height * width).reshape(height, width)
    for i in range(height):
        for j in range(width):
            depends = dependency_map(grad_fn, height, width, i, j)
            assert not (depends & (later >= i * width + j)).any(), (i, j)
            if j > 0 or num_layers > 2:  # column 0 of two layers sees nothing
                assert_causal_without_blind_spot(depends, i, j)
            else:
                assert not depends.any(), (i, j)
            numpy.testing.assert_array_equal(depends, field[i, j], err_msg=str((i, j)))
