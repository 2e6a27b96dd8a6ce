"""The fast graphs of the masked PixelCNN and the PixelRNNs against their faithful graphs.

``models.fast_pixel_rnn`` must build the same models as ``models.masked_pixel_cnn``
and ``models.pixel_rnn``: same parameters (names, shapes, order, initial values),
and to float32 rounding the same logits, cost, gradients and parameters after one
clipped Adam step, on random configurations (grey and colour); and, like every
model, no output may depend on a later pixel.
"""
import numpy
import pytest
import theano
import theano.tensor as T

from lib import WrapperLayer, floatX
from models import build as builder
from models.fast_pixel_rnn import (FastDiagonalBiLSTMPixelRNN, FastMaskedPixelCNN,
                                   FastRowLSTMPixelRNN)
from models.masked_pixel_cnn import MaskedPixelCNN
from models.pixel_rnn import DiagonalBiLSTMPixelRNN, RowLSTMPixelRNN
from test_fast_graph import assert_twins_agree, random_batch, twin_step

PAIRS = {"masked": (MaskedPixelCNN, FastMaskedPixelCNN),
         "rowlstm": (RowLSTMPixelRNN, FastRowLSTMPixelRNN),
         "diagbilstm": (DiagonalBiLSTMPixelRNN, FastDiagonalBiLSTMPixelRNN)}


def twins(kind, input_dim, dim, q_levels, num_layers, seed):
    """The faithful and the fast network of ``kind``, built from the same seed."""
    X = T.tensor4("X")
    layers = []
    for cls in PAIRS[kind]:
        numpy.random.seed(seed)
        layers.append(cls(WrapperLayer(X), input_dim, dim, Q_LEVELS=q_levels,
                          num_layers=num_layers, name="p"))
    return X, layers


@pytest.mark.parametrize("kind", sorted(PAIRS))
@pytest.mark.parametrize("num_layers, height, width, q_levels, input_dim, dim", [
    (1, 7, 11, 2, 1, 4),
    (2, 5, 4, 8, 3, 6),     # colour: grouped masks, h = 3 units, one per colour
    (3, 11, 7, 3, 1, 4),    # taller than wide: the diagonals' lengths saturate
])
def test_fast_equals_faithful(kind, num_layers, height, width, q_levels, input_dim, dim):
    X, layers = twins(kind, input_dim, dim, q_levels, num_layers, seed=21)
    X_r = T.itensor4("X_r")
    fn = twin_step(*layers, X, X_r)
    assert_twins_agree(*layers, fn, random_batch(2, height, width, input_dim, q_levels))


@pytest.mark.parametrize("kind", sorted(PAIRS))
def test_fast_equals_faithful_at_mnist_size(kind):
    """Four layers at 28 x 28, the size the models train at."""
    X, layers = twins(kind, 1, 4, 2, 4, seed=22)
    X_r = T.itensor4("X_r")
    fn = twin_step(*layers, X, X_r)
    assert_twins_agree(*layers, fn, random_batch(2, 28, 28, 1, 2))


@pytest.mark.parametrize("kind", sorted(PAIRS))
def test_build_picks_the_fast_graph_and_checkpoints_move_between_graphs(kind):
    config = {"model": kind, "input_dim": 1, "dim": 4, "num_layers": 1, "q_levels": 2}
    numpy.random.seed(3)
    fast = builder.build(config, graph="fast")
    numpy.random.seed(3)
    faithful = builder.build(config, graph="faithful")
    assert type(fast.layer) is PAIRS[kind][1] and type(faithful.layer) is PAIRS[kind][0]
    rng = numpy.random.RandomState(4)
    weights = {p.name: floatX(rng.uniform(-0.5, 0.5, p.get_value().shape))
               for p in faithful.all_params.get_params()}
    for net in (fast, faithful):
        builder.load_weights(net, weights, "random weights")
    x = floatX(rng.randint(0, 2, (2, 6, 5, 1)))
    numpy.testing.assert_allclose(fast.logits_fn()(x), faithful.logits_fn()(x),
                                  rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module", params=sorted(PAIRS))
def colour_gradient(request):
    """d(logits of colour c at (i, j)) / d(input), for a random 2-layer colour model."""
    numpy.random.seed(5)
    X = T.tensor4("X")
    layer = PAIRS[request.param][1](WrapperLayer(X), 3, 6, Q_LEVELS=2, num_layers=2, name="c")
    rng = numpy.random.RandomState(6)
    for p in layer.params:
        p.set_value(floatX(rng.uniform(-0.5, 0.5, p.get_value().shape)))
    i, j, c = T.iscalars("i", "j", "c")
    target = layer.output()[:, i, j, c, :].sum()
    return theano.function([X, i, j, c], T.grad(target, X))


def test_fast_colour_models_are_causal(colour_gradient):
    """Colour c at (i, j) depends on no later pixel and on colours >= c of its own pixel
    not at all (the R -> G -> B order)."""
    height, width = 5, 6
    x = floatX(numpy.random.RandomState(7).rand(1, height, width, 3))
    later = numpy.arange(height * width).reshape(height, width)
    for i, j in [(0, 0), (2, 3), (4, 5), (3, 0)]:
        for c in range(3):
            depends = numpy.abs(colour_gradient(x, i, j, c)[0]) > 0   # (H, W, 3)
            assert not depends[later > i * width + j].any(), (i, j, c)
            assert not depends[i, j, c:].any(), (i, j, c)
            if c > 0:
                assert depends[i, j, :c].all(), (i, j, c)
